#include "host/vm_inventory.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "host/api_error.h"
#include "vmm/vm_config.h"

namespace vireo {
namespace {

constexpr size_t kMaxNameLength = 64;

void fsync_path(const std::filesystem::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0) {
        fail_errno("{}: cannot sync", path.string());
    }
}

// `text` into `path`, on stable storage when it returns.
void write_synced(const std::filesystem::path& path, const std::string& text) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) {
        fail_errno("{}: cannot create", path.string());
    }
    size_t written = 0;
    while (written < text.size()) {
        ssize_t n = ::write(fd.get(), text.data() + written, text.size() - written);
        if (n < 0) {
            fail_errno("{}: cannot write", path.string());
        }
        written += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
        fail_errno("{}: cannot sync", path.string());
    }
}

std::filesystem::path trash_folder(const std::filesystem::path& datastore, std::string_view name) {
    return datastore / fmt::format(".{}.vireo-deleting", name);
}

}  // namespace

VmInventory::VmInventory(HostDatabase& database, DatastoreRegistry& datastores)
    : database_(database), datastores_(datastores) {}

std::optional<std::string> VmInventory::name_problem(std::string_view name) {
    bool valid =
        !name.empty() && name.size() <= kMaxNameLength &&
        std::isalnum(static_cast<unsigned char>(name[0])) &&
        std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
    if (valid) {
        return std::nullopt;
    }
    return fmt::format(
        "'{}' is not a VM name: 1 to {} characters of A-Z, a-z, 0-9, '-', '_' and '.', "
        "starting with a letter or digit (it names the VM's folder)",
        name, kMaxNameLength);
}

std::filesystem::path VmInventory::staging_folder(const std::filesystem::path& datastore,
                                                  std::string_view name) {
    return datastore / fmt::format(".{}.vireo-creating", name);
}

std::filesystem::path VmInventory::datastore_path(std::string_view datastore) {
    std::optional<Datastore> found = datastores_.find(datastore);
    if (!found) {
        refuse(400, "datastore: no datastore '{}' on this host (vireo datastore list)", datastore);
    }
    return found->path;
}

VmEntry VmInventory::entry(const HostDatabase::VmRecord& record) {
    std::optional<Datastore> datastore = datastores_.find(record.datastore);
    std::filesystem::path base = datastore ? datastore->path : std::filesystem::path();
    return {record.name, record.datastore, base / record.name, record.created};
}

void VmInventory::recover() {
    std::lock_guard lock(mutex_);
    for (const HostDatabase::VmRecord& record : database_.vms()) {
        std::optional<Datastore> datastore = datastores_.find(record.datastore);
        if (!datastore) {
            continue;  // its datastore is gone for now: nothing can be finished
        }
        std::filesystem::path folder = datastore->path / record.name;
        std::error_code error;
        if (record.stage == HostDatabase::VmStage::creating) {
            if (std::filesystem::exists(folder / "vm.json", error)) {
                database_.transaction([&] {
                    database_.set_vm_stage(record.name, HostDatabase::VmStage::registered);
                    database_.add_event(record.name, "vm.created",
                                        "created (finished after vireod restarted)");
                });
            } else {
                std::filesystem::remove_all(staging_folder(datastore->path, record.name), error);
                database_.transaction([&] {
                    database_.delete_vm(record.name);
                    database_.add_event(record.name, "vm.create-failed",
                                        "creation interrupted by a restart of vireod; undone");
                });
            }
        } else if (record.stage == HostDatabase::VmStage::deleting) {
            std::filesystem::path trash = trash_folder(datastore->path, record.name);
            if (std::filesystem::exists(folder, error)) {
                std::filesystem::rename(folder, trash, error);
            }
            std::filesystem::remove_all(trash, error);
            database_.transaction([&] {
                database_.delete_vm(record.name);
                database_.add_event(record.name, "vm.deleted",
                                    "deleted (finished after vireod restarted)");
            });
        }
    }
}

std::vector<VmEntry> VmInventory::list() {
    std::lock_guard lock(mutex_);
    std::vector<VmEntry> entries;
    for (const HostDatabase::VmRecord& record : database_.vms()) {
        if (record.stage == HostDatabase::VmStage::registered) {
            entries.push_back(entry(record));
        }
    }
    return entries;
}

std::optional<VmEntry> VmInventory::find(std::string_view name) {
    std::lock_guard lock(mutex_);
    std::optional<HostDatabase::VmRecord> record = database_.find_vm(name);
    if (!record || record->stage != HostDatabase::VmStage::registered) {
        return std::nullopt;
    }
    return entry(*record);
}

VmEntry VmInventory::get(std::string_view name) {
    std::optional<VmEntry> found = find(name);
    if (!found) {
        refuse(404, "no VM '{}' on this host", name);
    }
    return *found;
}

void VmInventory::check_definition(const nlohmann::json& document,
                                   const std::filesystem::path& folder) {
    try {
        VmConfig config = VmConfig::from_json(VmConfig::in_folder(document, folder), "definition");
        // Caught now rather than at the first power-on.
        std::error_code error;
        for (auto [field, path] : {std::pair{"boot.kernel", std::optional(config.boot.kernel)},
                                   std::pair{"boot.initrd", config.boot.initrd}}) {
            if (path && !std::filesystem::is_regular_file(*path, error)) {
                refuse(400, "definition: {}: {}: no such file", field, *path);
            }
        }
    } catch (const ApiError&) {
        throw;
    } catch (const Error& problem) {
        refuse(400, "{}", problem.what());
    }
}

VmEntry VmInventory::reconfigure(std::string_view name, const nlohmann::json& changes) {
    if (!changes.is_object()) {
        refuse(400, "body: must be a JSON object of the fields to change");
    }
    std::lock_guard lock(mutex_);
    std::optional<HostDatabase::VmRecord> record = database_.find_vm(name);
    if (!record || record->stage != HostDatabase::VmStage::registered) {
        refuse(404, "no VM '{}' on this host", name);
    }
    VmEntry vm = entry(*record);
    nlohmann::json document = nlohmann::json::parse(std::ifstream(vm.definition()), nullptr, false);
    if (!document.is_object()) {
        fail("VM '{}': {} is not a VM definition any more; fix it by hand", name,
             vm.definition().string());
    }
    for (const auto& [key, value] : changes.items()) {
        if (key != "vcpus" && key != "memory_mib" && key != "boot") {
            refuse(400, "{}: cannot be changed (vcpus, memory_mib and boot can)", key);
        }
        if (key == "boot" && value.is_object() && document[key].is_object()) {
            document[key].merge_patch(value);  // RFC 7396: the fields named change
        } else {
            document[key] = value;
        }
    }
    check_definition(document, vm.folder);
    std::filesystem::path next = vm.folder / "vm.json.new";
    write_synced(next, document.dump(2) + "\n");
    std::filesystem::rename(next, vm.definition());
    fsync_path(vm.folder);
    database_.add_event(name, "vm.reconfigured", fmt::format("changed {}", changes.dump()));
    return vm;
}

VmEntry VmInventory::create(std::string_view name, std::string_view datastore,
                            const nlohmann::json& definition) {
    if (auto problem = name_problem(name)) {
        refuse(400, "name: {}", *problem);
    }
    if (!definition.is_object()) {
        refuse(400, "definition: must be a JSON object (a VM definition), not {}",
               definition.type_name());
    }
    std::lock_guard lock(mutex_);
    std::filesystem::path base = datastore_path(datastore);
    if (database_.find_vm(name)) {
        refuse(409, "name: VM '{}' already exists on this host", name);
    }
    std::filesystem::path folder = base / name;
    std::error_code error;
    if (std::filesystem::exists(folder, error)) {
        refuse(409, "name: {} already exists on datastore '{}'", folder.string(), datastore);
    }

    // The agent owns the console (a log in the folder) and the control socket.
    nlohmann::json document = definition;
    document["name"] = name;
    document["console"] = {{"output", "file"}, {"path", "console.log"}, {"input", false}};
    document.erase("control_socket");
    check_definition(document, folder);

    HostDatabase::VmRecord record{std::string(name), std::string(datastore),
                                  HostDatabase::VmStage::creating, utc_now()};
    database_.transaction([&] { database_.insert_vm(record); });
    std::filesystem::path staging = staging_folder(base, name);
    try {
        std::filesystem::remove_all(staging);
        std::filesystem::create_directory(staging);
        write_synced(staging / "vm.json", document.dump(2) + "\n");
        fsync_path(staging);
        std::filesystem::rename(staging, folder);
        fsync_path(base);
    } catch (const std::exception& failure) {
        std::filesystem::remove_all(staging, error);
        database_.transaction([&] { database_.delete_vm(name); });
        fail("VM '{}': cannot write its folder {}: {}", name, folder.string(), failure.what());
    }
    database_.transaction([&] {
        database_.set_vm_stage(name, HostDatabase::VmStage::registered);
        database_.add_event(name, "vm.created", fmt::format("created in {}", folder.string()));
    });
    record.stage = HostDatabase::VmStage::registered;
    return entry(record);
}

void VmInventory::remove(std::string_view name, bool delete_files) {
    std::lock_guard lock(mutex_);
    std::optional<HostDatabase::VmRecord> record = database_.find_vm(name);
    if (!record || record->stage != HostDatabase::VmStage::registered) {
        refuse(404, "no VM '{}' on this host", name);
    }
    if (!delete_files) {
        database_.transaction([&] {
            database_.delete_vm(name);
            database_.add_event(name, "vm.unregistered", "unregistered; its folder was kept");
        });
        return;
    }
    std::filesystem::path base = datastore_path(record->datastore);
    // Marked first, so that a crash in the middle is finished at the next start.
    database_.transaction([&] { database_.set_vm_stage(name, HostDatabase::VmStage::deleting); });
    std::filesystem::path trash = trash_folder(base, name);
    std::filesystem::rename(base / name, trash);
    std::filesystem::remove_all(trash);
    database_.transaction([&] {
        database_.delete_vm(name);
        database_.add_event(name, "vm.deleted", "deleted with its folder");
    });
}

}  // namespace vireo
