#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "host/state_file.h"

namespace vireo {

// A datastore: a directory that holds VM folders, `<datastore>/<vm>/`, each
// with the VM's definition (`vm.json`), its disks and its log, so that the
// folder can be copied or opened from another host.
struct Datastore {
    std::string name;
    std::filesystem::path path;  // absolute
};

// What a datastore holds and how much room is left, measured now.
struct DatastoreUsage {
    bool reachable = false;               // false: the directory is gone (unmounted, removed)
    uint64_t capacity = 0;                // bytes of the file system it lives on
    uint64_t free = 0;                    // bytes an unprivileged user may still write
    std::vector<std::string> vm_folders;  // sorted
};

// The host's datastores, kept in `<state dir>/datastores.json` (a StateFile:
// locked, atomic changes). Refusals throw vireo::Error naming the datastore
// and the rule.
class DatastoreRegistry {
public:
    // $VIREO_STATE_DIR if set, else /var/lib/vireo.
    static std::filesystem::path default_state_dir();

    explicit DatastoreRegistry(std::filesystem::path state_dir);

    const std::filesystem::path& file() const { return state_.file(); }

    std::vector<Datastore> list() const;
    std::optional<Datastore> find(std::string_view name) const;
    // `path` must be an existing directory not registered under another name;
    // `name` 1 to 64 of [a-z0-9._-], unique. Creates the state dir if needed.
    Datastore add(std::string_view name, const std::filesystem::path& path);
    // Forgets the datastore; never touches its files. Refuses while it holds VM
    // folders unless `force`.
    Datastore remove(std::string_view name, bool force);

    static DatastoreUsage usage(const std::filesystem::path& path);
    // The folders directly under `path` that hold a `vm.json`.
    static std::vector<std::string> vm_folders(const std::filesystem::path& path);
    // Throws unless `name` is a valid datastore name.
    static void check_name(std::string_view name);

private:
    std::vector<Datastore> load() const;
    void store(const std::vector<Datastore>& datastores) const;

    StateFile state_;
};

}  // namespace vireo
