#include "host/vm_inventory.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "block/image_copy.h"
#include "block/image_factory.h"
#include "host/api_error.h"
#include "net/mac_address.h"
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

// vm.json replaced atomically: a new file, synced, renamed over the old.
void write_definition(const std::filesystem::path& folder, const nlohmann::json& document) {
    std::filesystem::path next = folder / "vm.json.new";
    write_synced(next, document.dump(2) + "\n");
    std::filesystem::rename(next, folder / "vm.json");
    fsync_path(folder);
}

std::filesystem::path trash_folder(const std::filesystem::path& datastore, std::string_view name) {
    return datastore / fmt::format(".{}.vireo-deleting", name);
}

// `definition` as the agent keeps it: named `name`, its console a log in the
// folder (the agent serves it), no control socket (the agent picks it), and
// each vNIC's MAC address drawn now and kept, so that it stays the same from
// one power-on to the next.
nlohmann::json for_agent(const nlohmann::json& definition, std::string_view name) {
    nlohmann::json document = definition;
    document["name"] = name;
    document["console"] = {{"output", "file"}, {"path", "console.log"}, {"input", false}};
    document.erase("control_socket");
    if (document.contains("nics") && document["nics"].is_array()) {
        for (nlohmann::json& nic : document["nics"]) {
            if (nic.is_object() && !nic.contains("mac")) {
                nic["mac"] = format_mac(random_vnic_mac());
            }
        }
    }
    return document;
}

}  // namespace

VmInventory::VmInventory(HostDatabase& database) : database_(database), datastores_(database) {}

Datastore VmInventory::remove_datastore(std::string_view name, bool force) {
    std::lock_guard lock(mutex_);
    return datastores_.remove(name, force);
}

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
    return entry(record, datastores_.list());
}

VmEntry VmInventory::entry(const HostDatabase::VmRecord& record,
                           const std::vector<Datastore>& datastores) {
    auto datastore = std::find_if(datastores.begin(), datastores.end(),
                                  [&](const Datastore& d) { return d.name == record.datastore; });
    std::filesystem::path base = datastore != datastores.end() ? datastore->path : "";
    std::error_code error;
    std::filesystem::path folder = base / record.name;
    return {record.name, record.datastore, folder, record.created,
            std::filesystem::exists(folder / kTemplateMarker, error)};
}

namespace {

// Carried by a VM's folder while it is renamed: the VM's name before.
constexpr const char* kRenameMarker = ".vireo-renamed-from";
constexpr std::string_view kConvertingSuffix = ".vireo-converting";

// A rename that a crash interrupted left the database with the VM's old name
// (its transaction rolled back) and maybe the folder with the new one: that
// folder is found by its marker and named back. Stale markers go.
void undo_interrupted_rename(const std::filesystem::path& datastore, const std::string& name) {
    std::filesystem::path folder = datastore / name;
    std::error_code error;
    if (!std::filesystem::exists(folder, error)) {
        for (const auto& entry : std::filesystem::directory_iterator(datastore, error)) {
            std::ifstream marker(entry.path() / kRenameMarker);
            std::string from;
            if (marker && std::getline(marker, from) && from == name) {
                std::filesystem::rename(entry.path(), folder, error);
                break;
            }
        }
    }
    std::filesystem::remove(folder / kRenameMarker, error);
}

}  // namespace

HostDatabase::VmRecord VmInventory::registered_record(std::string_view name) {
    std::optional<HostDatabase::VmRecord> record = database_.find_vm(name);
    if (!record || record->stage != HostDatabase::VmStage::registered) {
        refuse(404, "no VM '{}' on this host", name);
    }
    return *record;
}

nlohmann::json VmInventory::read_definition(const VmEntry& vm) {
    nlohmann::json document = nlohmann::json::parse(std::ifstream(vm.definition()), nullptr, false);
    if (!document.is_object()) {
        fail("VM '{}': {} is not a VM definition any more; fix it by hand", vm.name,
             vm.definition().string());
    }
    return document;
}

void VmInventory::recover() {
    std::lock_guard lock(mutex_);
    for (const HostDatabase::VmRecord& record : database_.vms()) {
        if (std::optional<Datastore> datastore = datastores_.find(record.datastore);
            datastore && record.stage == HostDatabase::VmStage::registered) {
            undo_interrupted_rename(datastore->path, record.name);
        }
    }
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
        } else {
            // A reconfigure killed before its rename: the old vm.json stands;
            // a disk conversion killed before its rename: the old disk does.
            std::filesystem::remove(folder / "vm.json.new", error);
            for (const auto& file : std::filesystem::directory_iterator(folder, error)) {
                if (file.path().filename().string().ends_with(kConvertingSuffix)) {
                    std::filesystem::remove(file.path(), error);
                }
            }
        }
    }
}

std::vector<VmEntry> VmInventory::list() {
    std::lock_guard lock(mutex_);
    // The registry read once, not once per VM: a list of 1000 VMs took 200 ms.
    std::vector<Datastore> datastores = datastores_.list();
    std::vector<VmEntry> entries;
    for (const HostDatabase::VmRecord& record : database_.vms()) {
        if (record.stage == HostDatabase::VmStage::registered) {
            entries.push_back(entry(record, datastores));
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
    HostDatabase::VmRecord record = registered_record(name);
    VmEntry vm = entry(record);
    nlohmann::json document = read_definition(vm);
    for (const auto& [key, value] : changes.items()) {
        if (key != "vcpus" && key != "memory_mib" && key != "boot" && key != "disks" &&
            key != "nics") {
            refuse(400, "{}: cannot be changed (vcpus, memory_mib, boot, disks and nics can)", key);
        }
        if (key == "boot" && value.is_object() && document[key].is_object()) {
            document[key].merge_patch(value);  // RFC 7396: the fields named change
        } else {
            document[key] = value;
        }
    }
    document = for_agent(document, name);  // new vNICs get their MACs now
    check_definition(document, vm.folder);
    write_definition(vm.folder, document);
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

    nlohmann::json document = for_agent(definition, name);
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
    HostDatabase::VmRecord record = registered_record(name);
    if (!delete_files) {
        database_.transaction([&] {
            database_.delete_vm(name);
            database_.add_event(name, "vm.unregistered", "unregistered; its folder was kept");
        });
        return;
    }
    std::filesystem::path base = datastore_path(record.datastore);
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

VmEntry VmInventory::make_template(std::string_view name) {
    std::lock_guard lock(mutex_);
    HostDatabase::VmRecord record = registered_record(name);
    VmEntry vm = entry(record);
    if (vm.is_template) {
        refuse(409, "VM '{}' is a template already", name);
    }
    // Its disks first: a linked clone relies on them never changing.
    VmConfig config = VmConfig::from_file(vm.definition().string());
    for (const VmConfig::Disk& disk : config.disks) {
        std::filesystem::permissions(disk.path,
                                     std::filesystem::perms::owner_write |
                                         std::filesystem::perms::group_write |
                                         std::filesystem::perms::others_write,
                                     std::filesystem::perm_options::remove);
    }
    write_synced(vm.folder / kTemplateMarker, "a template: cloned, never run (vireod)\n");
    fsync_path(vm.folder);
    database_.add_event(name, "vm.made-template", "made a template");
    vm.is_template = true;
    return vm;
}

VmInventory::ClonePlan VmInventory::plan_clone(std::string_view source, std::string_view name,
                                               std::string_view datastore, bool linked) {
    if (auto problem = name_problem(name)) {
        refuse(400, "name: {}", *problem);
    }
    std::lock_guard lock(mutex_);
    ClonePlan plan{
        entry(registered_record(source)),
        {std::string(name), std::string(datastore), HostDatabase::VmStage::creating, utc_now()},
        datastore_path(datastore),
        "",
        linked};
    if (linked && !plan.source.is_template) {
        refuse(409,
               "VM '{}' is not a template: a linked clone's disks rest on its disks, which must "
               "never change again (make it one first: vireo vm template {})",
               source, source);
    }
    if (database_.find_vm(name)) {
        refuse(409, "name: VM '{}' already exists on this host", name);
    }
    std::error_code error;
    if (std::filesystem::exists(plan.datastore_path / name, error)) {
        refuse(409, "name: {} already exists on datastore '{}'",
               (plan.datastore_path / name).string(), datastore);
    }
    nlohmann::json document = read_definition(plan.source);
    if (document.contains("nics") && document["nics"].is_array()) {
        for (nlohmann::json& nic : document["nics"]) {
            if (!nic.is_object()) {
                continue;  // check_definition() names it
            }
            if (!nic.contains("portgroup") && nic.contains("tap")) {
                refuse(409,
                       "VM '{}': its vNIC on TAP {} cannot be shared by a clone; put it on a "
                       "port group (vireo portgroup) first",
                       source, nic["tap"].dump());
            }
            nic.erase("mac");  // the clone's own, drawn by for_agent()
            // A port group's TAP is its VM's own: the clone's gets a new name.
            nic["tap"] = fmt::format("vnic{:08x}", std::random_device()());
        }
    }
    plan.definition = document.dump();
    database_.transaction([&] { database_.insert_vm(plan.record); });
    return plan;
}

VmEntry VmInventory::clone(const ClonePlan& plan, const ProgressReport& progress) {
    const std::string& name = plan.record.name;
    const std::filesystem::path& base = plan.datastore_path;
    const VmEntry& from = plan.source;
    bool linked = plan.linked;
    std::filesystem::path folder = base / name;
    nlohmann::json document = nlohmann::json::parse(plan.definition);
    std::filesystem::path staging = staging_folder(base, name);
    try {
        std::filesystem::remove_all(staging);
        std::filesystem::create_directory(staging);
        nlohmann::json& disks = document["disks"];
        if (!disks.is_array()) {
            disks = nlohmann::json::array();
        }
        // Each disk's share of the work: its size (a linked clone's are instant).
        std::vector<std::filesystem::path> sources;
        uint64_t total = 0, done = 0;
        for (const nlohmann::json& disk : disks) {
            std::filesystem::path path = disk.value("path", std::string());
            sources.push_back(path.is_relative() ? from.folder / path : path);
            total += std::filesystem::file_size(sources.back());
        }
        for (size_t i = 0; i < sources.size(); ++i) {
            std::string file = fmt::format("disk{}{}", i, sources[i].extension().string());
            std::filesystem::path target = staging / file;
            ImageFormat format = probe_format(sources[i]);
            if (linked) {
                CreateOptions overlay;
                overlay.format = ImageFormat::qcow2;
                overlay.backing_file = std::filesystem::absolute(sources[i]).string();
                overlay.backing_format = format;
                target.replace_extension(".qcow2");
                create_image(target, overlay);
            } else {
                CopyOptions copy;
                copy.format = format;
                uint64_t before = done;
                copy_image(sources[i], target, copy, [&](uint64_t bytes, uint64_t size) {
                    uint64_t share = std::filesystem::file_size(sources[i]);
                    done = before + (size ? bytes * share / size : share);
                    progress(total ? static_cast<double>(done) / static_cast<double>(total) : 1);
                });
            }
            disks[i]["path"] = target.filename().string();
            disks[i].erase("read_only");  // the template's were; the clone's are its own
            progress(total ? static_cast<double>(done) / static_cast<double>(total) : 1);
        }
        if (disks.empty()) {
            document.erase("disks");
        }
        document = for_agent(document, name);
        check_definition(document, staging);
        write_synced(staging / "vm.json", document.dump(2) + "\n");
        fsync_path(staging);
        std::filesystem::rename(staging, folder);
        fsync_path(base);
    } catch (...) {
        std::error_code error;
        std::filesystem::remove_all(staging, error);
        database_.transaction([&] { database_.delete_vm(name); });
        throw;
    }
    database_.transaction([&] {
        database_.set_vm_stage(name, HostDatabase::VmStage::registered);
        database_.add_event(name, "vm.created",
                            fmt::format("{} clone of '{}' in {}", linked ? "a linked" : "a full",
                                        from.name, folder.string()));
    });
    HostDatabase::VmRecord record = plan.record;
    record.stage = HostDatabase::VmStage::registered;
    return entry(record);
}

VmEntry VmInventory::rename(std::string_view name, std::string_view new_name) {
    if (auto problem = name_problem(new_name)) {
        refuse(400, "name: {}", *problem);
    }
    std::lock_guard lock(mutex_);
    HostDatabase::VmRecord record = registered_record(name);
    if (database_.find_vm(new_name)) {
        refuse(409, "name: VM '{}' already exists on this host", new_name);
    }
    std::filesystem::path base = datastore_path(record.datastore);
    std::filesystem::path from = base / name;
    std::filesystem::path to = base / new_name;
    std::error_code error;
    if (std::filesystem::exists(to, error)) {
        refuse(409, "name: {} already exists on datastore '{}'", to.string(), record.datastore);
    }
    write_synced(from / kRenameMarker, std::string(name) + "\n");
    fsync_path(from);
    database_.transaction([&] {
        database_.rename_vm(name, new_name);
        std::filesystem::rename(from, to);
        fsync_path(base);
        database_.add_event(new_name, "vm.renamed", fmt::format("renamed from '{}'", name));
    });
    nlohmann::json document = nlohmann::json::parse(std::ifstream(to / "vm.json"), nullptr, false);
    if (document.is_object()) {
        document["name"] = new_name;
        write_definition(to, document);
    }
    std::filesystem::remove(to / kRenameMarker, error);
    record.name = new_name;
    return entry(record);
}

VmEntry VmInventory::add_disk(std::string_view name, uint64_t size, ImageFormat format) {
    constexpr uint64_t kMaxDiskSize = uint64_t{64} << 40;  // qcow2's own limit is higher
    if (size == 0 || size % 512 != 0 || size > kMaxDiskSize) {
        refuse(400, "size: {} bytes: give a multiple of 512 from 512 bytes to 64 TiB", size);
    }
    std::lock_guard lock(mutex_);
    HostDatabase::VmRecord record = registered_record(name);
    VmEntry vm = entry(record);
    nlohmann::json document = read_definition(vm);
    std::string extension = format == ImageFormat::qcow2 ? ".qcow2" : ".raw";
    std::filesystem::path file;
    std::error_code error;
    for (size_t number = 0;; ++number) {  // diskN, whatever the format of those before
        file = vm.folder / fmt::format("disk{}{}", number, extension);
        if (!std::filesystem::exists(vm.folder / fmt::format("disk{}.qcow2", number), error) &&
            !std::filesystem::exists(vm.folder / fmt::format("disk{}.raw", number), error)) {
            break;
        }
    }
    CreateOptions options;
    options.format = format;
    options.size = size;
    create_image(file, options);
    if (!document["disks"].is_array()) {
        document["disks"] = nlohmann::json::array();
    }
    document["disks"].push_back({{"path", file.filename().string()}});
    try {
        check_definition(document, vm.folder);
        write_definition(vm.folder, document);
    } catch (...) {
        std::filesystem::remove(file, error);
        throw;
    }
    database_.add_event(name, "vm.disk-added",
                        fmt::format("disk {} of {} bytes added", file.filename().string(), size));
    return vm;
}

VmEntry VmInventory::remove_disk(std::string_view name, size_t index, bool delete_file) {
    std::lock_guard lock(mutex_);
    HostDatabase::VmRecord record = registered_record(name);
    VmEntry vm = entry(record);
    nlohmann::json document = read_definition(vm);
    if (!document["disks"].is_array() || index >= document["disks"].size()) {
        refuse(404, "VM '{}' has no disks[{}]", name, index);
    }
    std::filesystem::path path = document["disks"][index].value("path", std::string());
    std::filesystem::path file = path.is_relative() ? vm.folder / path : path;
    if (delete_file && file.lexically_normal().parent_path() != vm.folder) {
        refuse(409,
               "VM '{}': disks[{}] ({}) is not in its folder: it is kept (detach it without "
               "files=true)",
               name, index, file.string());
    }
    document["disks"].erase(index);
    if (document["disks"].empty()) {
        document.erase("disks");
    }
    write_definition(vm.folder, document);
    std::error_code error;
    if (delete_file) {
        std::filesystem::remove(file, error);
    }
    database_.add_event(name, "vm.disk-removed",
                        fmt::format("disks[{}] ({}) {}", index, file.string(),
                                    delete_file ? "deleted" : "detached"));
    return vm;
}

VmInventory::ConvertPlan VmInventory::plan_convert(std::string_view name, size_t index,
                                                   ImageFormat format) {
    std::lock_guard lock(mutex_);
    VmEntry vm = entry(registered_record(name));
    nlohmann::json document = read_definition(vm);
    if (!document["disks"].is_array() || index >= document["disks"].size()) {
        refuse(404, "VM '{}' has no disks[{}]", name, index);
    }
    std::filesystem::path path = document["disks"][index].value("path", std::string());
    ConvertPlan plan{std::string(name),
                     index,
                     format,
                     (path.is_relative() ? vm.folder / path : path).lexically_normal(),
                     {},
                     {}};
    if (plan.source.parent_path() != vm.folder) {
        refuse(409,
               "VM '{}': disks[{}] ({}) is not in its folder: convert it with vireo disk convert "
               "and give the VM the new image",
               name, index, plan.source.string());
    }
    if (image_info(plan.source).format == format) {
        refuse(409, "VM '{}': disks[{}] ({}) is {} already", name, index, plan.source.string(),
               format_name(format));
    }
    plan.target =
        vm.folder / fmt::format("{}.{}", plan.source.stem().string(), format_name(format));
    plan.staging =
        vm.folder / fmt::format(".{}{}", plan.target.filename().string(), kConvertingSuffix);
    std::error_code error;
    if (std::filesystem::exists(plan.target, error)) {
        refuse(409, "VM '{}': {} exists already: remove or rename it first", name,
               plan.target.string());
    }
    return plan;
}

VmEntry VmInventory::convert_disk(const ConvertPlan& plan, const ProgressReport& progress) {
    std::error_code error;
    std::filesystem::remove(plan.staging, error);  // what a cancelled conversion left
    CopyOptions options;
    options.format = plan.format;
    copy_image(plan.source, plan.staging, options, [&](uint64_t done, uint64_t total) {
        progress(total ? static_cast<double>(done) / static_cast<double>(total) : 1.0);
    });
    std::lock_guard lock(mutex_);
    try {
        fsync_path(plan.staging);
        VmEntry vm = entry(registered_record(plan.vm));
        nlohmann::json document = read_definition(vm);
        document["disks"][plan.index]["path"] = plan.target.filename().string();
        std::filesystem::rename(plan.staging, plan.target);
        try {
            check_definition(document, vm.folder);
            write_definition(vm.folder, document);
        } catch (...) {
            std::filesystem::remove(plan.target, error);
            throw;
        }
        std::filesystem::remove(plan.source, error);
        database_.add_event(plan.vm, "vm.disk-converted",
                            fmt::format("disks[{}] converted to {}: {}", plan.index,
                                        format_name(plan.format), plan.target.filename().string()));
        return vm;
    } catch (...) {
        std::filesystem::remove(plan.staging, error);
        throw;
    }
}

}  // namespace vireo
