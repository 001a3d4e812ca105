#include "host/datastore_registry.h"

#include <sys/statvfs.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "host/state_file.h"

namespace vireo {
namespace {

constexpr size_t kMaxNameLength = 64;
constexpr int kFileVersion = 1;

}  // namespace

std::filesystem::path DatastoreRegistry::default_state_dir() {
    return StateFile::default_dir();
}

DatastoreRegistry::DatastoreRegistry(std::filesystem::path state_dir)
    : state_(std::move(state_dir), "datastores", kFileVersion) {}

void DatastoreRegistry::check_name(std::string_view name) {
    bool valid_chars = std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    });
    if (name.empty() || name.size() > kMaxNameLength || !valid_chars || name == "." ||
        name == "..") {
        fail(
            "datastore '{}': a name is 1 to {} characters of a-z, 0-9, '-', '_' and '.' "
            "(not '.' or '..')",
            name, kMaxNameLength);
    }
}

std::vector<Datastore> DatastoreRegistry::load() const {
    std::optional<nlohmann::json> document = state_.load();
    std::vector<Datastore> datastores;
    if (!document) {
        return datastores;
    }
    try {
        for (const auto& entry : document->at("datastores")) {
            datastores.push_back(
                {entry.at("name").get<std::string>(), entry.at("path").get<std::string>()});
        }
    } catch (const nlohmann::json::exception& e) {
        fail("datastore registry {}: malformed ({}); fix or remove the file",
             state_.file().string(), e.what());
    }
    return datastores;
}

void DatastoreRegistry::store(const std::vector<Datastore>& datastores) const {
    nlohmann::json list = nlohmann::json::array();
    for (const Datastore& d : datastores) {
        list.push_back({{"name", d.name}, {"path", d.path.string()}});
    }
    state_.store({{"datastores", list}});
}

std::vector<Datastore> DatastoreRegistry::list() const {
    if (!std::filesystem::exists(state_.file())) {
        return {};
    }
    StateFile::Lock lock = state_.lock(false);
    return load();
}

std::optional<Datastore> DatastoreRegistry::find(std::string_view name) const {
    for (Datastore& d : list()) {
        if (d.name == name) {
            return std::move(d);
        }
    }
    return std::nullopt;
}

Datastore DatastoreRegistry::add(std::string_view name, const std::filesystem::path& path) {
    check_name(name);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        fail("datastore add {} {}: no such directory", name, path.string());
    }
    if (!std::filesystem::is_directory(path, ec)) {
        fail("datastore add {} {}: not a directory", name, path.string());
    }
    Datastore added{std::string(name), std::filesystem::canonical(path)};
    StateFile::Lock lock = state_.lock(true);
    std::vector<Datastore> datastores = load();
    for (const Datastore& d : datastores) {
        if (d.name == added.name) {
            fail("datastore add {}: a datastore of that name exists already ({})", name,
                 d.path.string());
        }
        if (d.path == added.path) {
            fail("datastore add {} {}: that directory is datastore '{}' already", name,
                 added.path.string(), d.name);
        }
    }
    datastores.push_back(added);
    store(datastores);
    return added;
}

Datastore DatastoreRegistry::remove(std::string_view name, bool force) {
    if (!std::filesystem::exists(state_.file())) {
        fail("datastore remove {}: no such datastore", name);
    }
    StateFile::Lock lock = state_.lock(true);
    std::vector<Datastore> datastores = load();
    auto it = std::find_if(datastores.begin(), datastores.end(),
                           [&](const Datastore& d) { return d.name == name; });
    if (it == datastores.end()) {
        fail("datastore remove {}: no such datastore", name);
    }
    Datastore removed = *it;
    if (!force) {
        std::vector<std::string> vms = vm_folders(removed.path);
        if (!vms.empty()) {
            std::string names = vms.front();
            for (size_t i = 1; i < std::min<size_t>(vms.size(), 3); ++i) {
                names += ", " + vms[i];
            }
            fail(
                "datastore remove {}: it holds {} VM folder(s) ({}{}); use --force to forget "
                "it anyway (no file is deleted)",
                name, vms.size(), names, vms.size() > 3 ? ", ..." : "");
        }
    }
    datastores.erase(it);
    store(datastores);
    return removed;
}

std::vector<std::string> DatastoreRegistry::vm_folders(const std::filesystem::path& path) {
    std::vector<std::string> folders;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
        std::error_code entry_ec;
        if (entry.is_directory(entry_ec) &&
            std::filesystem::is_regular_file(entry.path() / "vm.json", entry_ec)) {
            folders.push_back(entry.path().filename().string());
        }
    }
    std::sort(folders.begin(), folders.end());
    return folders;
}

DatastoreUsage DatastoreRegistry::usage(const std::filesystem::path& path) {
    DatastoreUsage usage;
    struct statvfs fs {};
    std::error_code ec;
    if (!std::filesystem::is_directory(path, ec) || statvfs(path.c_str(), &fs) != 0) {
        return usage;
    }
    usage.reachable = true;
    usage.capacity = uint64_t{fs.f_blocks} * fs.f_frsize;
    usage.free = uint64_t{fs.f_bavail} * fs.f_frsize;
    usage.vm_folders = vm_folders(path);
    return usage;
}

}  // namespace vireo
