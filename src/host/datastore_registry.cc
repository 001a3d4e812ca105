#include "host/datastore_registry.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/unique_fd.h"

namespace vireo {
namespace {

constexpr size_t kMaxNameLength = 64;
constexpr int kFileVersion = 1;

// flock on the registry's lock file, held for the object's lifetime.
class RegistryLock {
public:
    RegistryLock(const std::filesystem::path& path, bool exclusive)
        : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
        if (!fd_) {
            fail_errno("datastore registry {}: cannot open the lock file", path.string());
        }
        while (flock(fd_.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) {
            if (errno != EINTR) {
                fail_errno("datastore registry {}: flock", path.string());
            }
        }
    }

private:
    UniqueFd fd_;  // closing it releases the lock
};

void write_all(int fd, const std::string& text, const std::filesystem::path& path) {
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fail_errno("datastore registry {}: write", path.string());
        }
        done += static_cast<size_t>(n);
    }
}

}  // namespace

std::filesystem::path DatastoreRegistry::default_state_dir() {
    const char* dir = std::getenv("VIREO_STATE_DIR");
    return dir != nullptr && *dir != '\0' ? std::filesystem::path(dir)
                                          : std::filesystem::path("/var/lib/vireo");
}

DatastoreRegistry::DatastoreRegistry(std::filesystem::path state_dir)
    : dir_(std::move(state_dir)),
      file_(dir_ / "datastores.json"),
      lock_(dir_ / "datastores.lock") {}

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
    std::ifstream in(file_);
    if (!in) {
        if (std::filesystem::exists(file_)) {
            fail("datastore registry {}: cannot be read", file_.string());
        }
        return {};
    }
    std::vector<Datastore> datastores;
    try {
        nlohmann::json document = nlohmann::json::parse(in);
        if (document.value("version", 0) != kFileVersion) {
            fail("datastore registry {}: version {} is not one this Vireo reads ({})",
                 file_.string(), document.value("version", 0), kFileVersion);
        }
        for (const auto& entry : document.at("datastores")) {
            datastores.push_back(
                {entry.at("name").get<std::string>(), entry.at("path").get<std::string>()});
        }
    } catch (const nlohmann::json::exception& e) {
        fail("datastore registry {}: malformed ({}); fix or remove the file", file_.string(),
             e.what());
    }
    return datastores;
}

void DatastoreRegistry::store(const std::vector<Datastore>& datastores) const {
    nlohmann::json list = nlohmann::json::array();
    for (const Datastore& d : datastores) {
        list.push_back({{"name", d.name}, {"path", d.path.string()}});
    }
    std::string text =
        nlohmann::json{{"version", kFileVersion}, {"datastores", list}}.dump(2) + "\n";
    std::filesystem::path temp = file_;
    temp += ".tmp";
    {
        UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd) {
            fail_errno("datastore registry {}: cannot create", temp.string());
        }
        write_all(fd.get(), text, temp);
        if (fsync(fd.get()) != 0) {
            fail_errno("datastore registry {}: fsync", temp.string());
        }
    }
    if (::rename(temp.c_str(), file_.c_str()) != 0) {
        fail_errno("datastore registry {}: rename from {}", file_.string(), temp.string());
    }
    // The rename itself reaches the disk with the directory.
    UniqueFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) {
        fsync(dir.get());
    }
}

std::vector<Datastore> DatastoreRegistry::list() const {
    if (!std::filesystem::exists(file_)) {
        return {};
    }
    RegistryLock lock(lock_, false);
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
    std::filesystem::create_directories(dir_, ec);
    if (ec) {
        fail("datastore registry {}: cannot create the state directory: {}", dir_.string(),
             ec.message());
    }
    RegistryLock lock(lock_, true);
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
    if (!std::filesystem::exists(file_)) {
        fail("datastore remove {}: no such datastore", name);
    }
    RegistryLock lock(lock_, true);
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
