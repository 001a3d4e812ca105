#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "host/host_database.h"

namespace vireo {

// A datastore: a directory that holds VM folders, `<datastore>/<vm>/`, each
// with the VM's definition (`vm.json`), its disks and its log, so that the
// folder can be copied or opened from another host.
struct Datastore {
    std::string name;
    std::filesystem::path path;  // absolute
    std::string added;           // ISO 8601, UTC
};

// What a datastore holds and how much room is left, measured now.
struct DatastoreUsage {
    bool reachable = false;               // false: the directory is gone (unmounted, removed)
    uint64_t capacity = 0;                // bytes of the file system it lives on
    uint64_t free = 0;                    // bytes an unprivileged user may still write
    std::vector<std::string> vm_folders;  // sorted
};

// The host's datastores, kept in the host database (vireod's). Refusals throw
// ApiError naming the datastore and the rule: 400 a bad name or path, 404 no
// such datastore, 409 a name or path taken, or VMs still on it.
class DatastoreRegistry {
public:
    explicit DatastoreRegistry(HostDatabase& database) : database_(database) {}

    // Registers the datastores of `<state dir>/datastores.json`, where `vireo
    // datastore` kept them before vireod had a database, then renames that
    // file `datastores.json.imported`. A crash in between imports nothing
    // twice. Returns how many were added.
    size_t import_legacy_file(const std::filesystem::path& state_dir);

    std::vector<Datastore> list() const;
    std::optional<Datastore> find(std::string_view name) const;
    // `path` must be an existing absolute directory not registered under
    // another name; `name` 1 to 64 of [a-z0-9._-], unique.
    Datastore add(std::string_view name, const std::filesystem::path& path);
    // Forgets the datastore; never touches its files. Refuses while VMs of
    // this host are registered on it, and while it holds other VM folders
    // unless `force`. VmInventory::remove_datastore serializes it with the
    // creation of VMs.
    Datastore remove(std::string_view name, bool force);

    static DatastoreUsage usage(const std::filesystem::path& path);
    // The folders directly under `path` that hold a `vm.json`.
    static std::vector<std::string> vm_folders(const std::filesystem::path& path);
    // Refuses (400) unless `name` is a valid datastore name.
    static void check_name(std::string_view name);

private:
    HostDatabase& database_;
};

}  // namespace vireo
