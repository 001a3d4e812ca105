#include "host/datastore_registry.h"

#include <sys/statvfs.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "host/api_error.h"
#include "host/state_file.h"

namespace vireo {
namespace {

constexpr size_t kMaxNameLength = 64;
constexpr int kLegacyFileVersion = 1;

Datastore from_record(const HostDatabase::DatastoreRecord& record) {
    return {record.name, record.path, record.added};
}

// "a, b, c, ..." for a refusal: the first three names.
std::string first_names(const std::vector<std::string>& names) {
    std::string text;
    for (size_t i = 0; i < std::min<size_t>(names.size(), 3); ++i) {
        text += (i ? ", " : "") + names[i];
    }
    return names.size() > 3 ? text + ", ..." : text;
}

}  // namespace

void DatastoreRegistry::check_name(std::string_view name) {
    bool valid_chars = std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    });
    if (name.empty() || name.size() > kMaxNameLength || !valid_chars || name == "." ||
        name == "..") {
        refuse(400,
               "name: datastore '{}': a name is 1 to {} characters of a-z, 0-9, '-', '_' and '.' "
               "(not '.' or '..')",
               name, kMaxNameLength);
    }
}

size_t DatastoreRegistry::import_legacy_file(const std::filesystem::path& state_dir) {
    StateFile legacy(state_dir, "datastores", kLegacyFileVersion);
    std::error_code error;
    if (!std::filesystem::exists(legacy.file(), error)) {
        return 0;
    }
    std::vector<Datastore> listed;
    try {
        StateFile::Lock lock = legacy.lock(false);
        std::optional<nlohmann::json> document = legacy.load();
        for (const auto& entry : document ? document->at("datastores") : nlohmann::json::array()) {
            listed.push_back({entry.at("name").get<std::string>(),
                              entry.at("path").get<std::string>(), utc_now()});
        }
    } catch (const nlohmann::json::exception& e) {
        fail("datastore registry {}: malformed ({}); fix or remove the file",
             legacy.file().string(), e.what());
    }
    size_t added = 0;
    database_.transaction([&] {
        std::vector<Datastore> known = list();
        for (const Datastore& datastore : listed) {
            bool taken = std::any_of(known.begin(), known.end(), [&](const Datastore& d) {
                return d.name == datastore.name || d.path == datastore.path;
            });
            if (taken) {
                spdlog::warn("datastore '{}' ({}) of {}: its name or path is registered already",
                             datastore.name, datastore.path.string(), legacy.file().string());
                continue;
            }
            check_name(datastore.name);
            database_.insert_datastore({datastore.name, datastore.path.string(), datastore.added});
            known.push_back(datastore);
            ++added;
        }
    });
    std::filesystem::path imported = legacy.file();
    imported += ".imported";
    std::filesystem::rename(legacy.file(), imported);
    std::filesystem::remove(state_dir / "datastores.lock", error);
    spdlog::info("imported {} datastore(s) from {} (now {})", added, legacy.file().string(),
                 imported.string());
    return added;
}

std::vector<Datastore> DatastoreRegistry::list() const {
    std::vector<Datastore> datastores;
    for (const HostDatabase::DatastoreRecord& record : database_.datastores()) {
        datastores.push_back(from_record(record));
    }
    return datastores;
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
    if (!path.is_absolute()) {
        refuse(400, "path: '{}' is not an absolute path (the directory on the host)",
               path.string());
    }
    if (!std::filesystem::exists(path, ec)) {
        refuse(400, "path: {}: no such directory", path.string());
    }
    if (!std::filesystem::is_directory(path, ec)) {
        refuse(400, "path: {}: not a directory", path.string());
    }
    Datastore added{std::string(name), std::filesystem::canonical(path), utc_now()};
    database_.transaction([&] {
        for (const Datastore& d : list()) {
            if (d.name == added.name) {
                refuse(409, "datastore add {}: datastore '{}' exists already ({})", name, d.name,
                       d.path.string());
            }
            if (d.path == added.path) {
                refuse(409, "datastore add {}: {} is datastore '{}' already", name,
                       added.path.string(), d.name);
            }
        }
        database_.insert_datastore({added.name, added.path.string(), added.added});
    });
    return added;
}

Datastore DatastoreRegistry::remove(std::string_view name, bool force) {
    std::optional<Datastore> found = find(name);
    if (!found) {
        refuse(404, "datastore remove {}: no such datastore (vireo datastore list)", name);
    }
    // Read before the transaction: a hung mount must not hold the database.
    std::vector<std::string> folders = force ? std::vector<std::string>{} : vm_folders(found->path);
    database_.transaction([&] {
        if (!this->find(name)) {
            refuse(404, "datastore remove {}: no such datastore (vireo datastore list)", name);
        }
        std::vector<std::string> registered;
        for (const HostDatabase::VmRecord& vm : database_.vms()) {
            if (vm.datastore == name) {
                registered.push_back(vm.name);
            }
        }
        if (!registered.empty()) {
            refuse(409,
                   "datastore remove {}: {} VM(s) of this host are registered on it ({}); delete "
                   "them first (vireo vm delete, without --files to keep their folders)",
                   name, registered.size(), first_names(registered));
        }
        if (!folders.empty()) {
            refuse(409,
                   "datastore remove {}: it holds {} VM folder(s) ({}); use --force to forget "
                   "it anyway (no file is deleted)",
                   name, folders.size(), first_names(folders));
        }
        database_.delete_datastore(name);
    });
    return *found;
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
