#pragma once

#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "block/image_options.h"
#include "host/datastore_registry.h"
#include "host/host_database.h"

namespace vireo {

// A VM this host owns: a folder `<datastore>/<name>/` holding its definition
// (`vm.json`, paths in it relative to the folder), its disks and its logs.
struct VmEntry {
    std::string name;
    std::string datastore;
    std::filesystem::path folder;
    std::string created;

    bool is_template = false;  // its folder holds kTemplateMarker: cloned, never run

    std::filesystem::path definition() const { return folder / "vm.json"; }
    std::filesystem::path console_log() const { return folder / "console.log"; }
};

// The file whose presence in a VM's folder makes the VM a template, so that
// the mark travels with the folder (as ESX's .vmtx does).
inline constexpr const char* kTemplateMarker = ".vireo-template";

// Reports how far a long operation is (0 to 1); may throw to stop it.
using ProgressReport = std::function<void(double fraction)>;

// The host's VMs: which folders on which datastores are registered here (the
// host database), created and deleted so that a crash at any point leaves a
// VM whole or absent, never half there. Thread-safe. Refusals throw ApiError.
class VmInventory {
public:
    explicit VmInventory(HostDatabase& database);

    // The datastores VM folders live on (in the same database).
    DatastoreRegistry& datastores() { return datastores_; }
    // DatastoreRegistry::remove, never between a create's or a clone's look
    // at the datastore and its registration of the VM.
    Datastore remove_datastore(std::string_view name, bool force);

    // Finishes what a crash interrupted: a VM being created whose folder is
    // whole is registered, one whose folder is not is undone (its partial
    // folder removed); a VM being deleted is deleted.
    void recover();

    std::vector<VmEntry> list();
    // Throws ApiError 404 when there is no such VM.
    VmEntry get(std::string_view name);
    std::optional<VmEntry> find(std::string_view name);

    // Makes `<datastore>/<name>/vm.json` from `definition` (a VM definition as
    // vm.json holds it; its console goes to the folder's console.log) and
    // registers it. 400: a bad name, datastore or definition; 409: the name or
    // the folder is taken.
    VmEntry create(std::string_view name, std::string_view datastore,
                   const nlohmann::json& definition);
    // Changes the VM's definition: `changes` (vcpus, memory_mib, and boot as
    // a JSON merge patch: the fields named change) laid over its vm.json, checked as create()
    // checks, written atomically (a new file, synced, renamed over the old). The caller makes sure
    // it is off. 400 for a change that is not allowed or not valid.
    VmEntry reconfigure(std::string_view name, const nlohmann::json& changes);
    // Forgets the VM; with `delete_files` its folder goes too. The caller makes
    // sure it is not running.
    void remove(std::string_view name, bool delete_files);

    // A clone on its way: checked, its name reserved (recorded as being
    // created, so that recover() undoes it should vireod end before it is).
    struct ClonePlan {
        VmEntry source;
        HostDatabase::VmRecord record;
        std::filesystem::path datastore_path;
        std::string definition;  // the source's, without its MACs and TAPs
        bool linked = false;
    };
    // Checks that `source` (off) can be cloned as `name` on `datastore`: a
    // VM on a TAP cannot (a clone would share it), a linked clone needs a
    // template. 400/404/409 before anything is written.
    ClonePlan plan_clone(std::string_view source, std::string_view name, std::string_view datastore,
                         bool linked);
    // Makes the clone: the definition with new MAC addresses, the disks
    // copied whole (thin, in the source's format) or, linked, as qcow2
    // overlays on the template's. Written under a staging name and registered
    // as create() does; a throw (from `progress`: a cancel) undoes it all.
    VmEntry clone(const ClonePlan& plan, const ProgressReport& progress);
    // Renames a VM (off) and its folder, in one transaction that also renames
    // the folder: a crash in between is undone at the next start (recover()
    // finds the folder by the marker it carries meanwhile).
    VmEntry rename(std::string_view name, std::string_view new_name);
    // Makes a new disk image in the VM's folder (`diskN.qcow2` or `.raw`,
    // thin) and adds it to its definition; returns the VM. 400 for a bad
    // size or format.
    VmEntry add_disk(std::string_view name, uint64_t size, ImageFormat format);
    // Takes disks[index] out of the definition; with `delete_file` its image
    // goes too, when it is in the VM's folder (409 otherwise).
    VmEntry remove_disk(std::string_view name, size_t index, bool delete_file);
    // A conversion of disks[index], an image in the VM's folder, to
    // `format`, checked now: 404 for no such disk; 409 for one outside the
    // folder, one in that format already, or a new image's name taken.
    struct ConvertPlan {
        std::string vm;
        size_t index = 0;
        ImageFormat format = ImageFormat::qcow2;
        std::filesystem::path source;   // the image now
        std::filesystem::path target;   // diskN.qcow2 or .raw beside it
        std::filesystem::path staging;  // what the copy writes first
    };
    ConvertPlan plan_convert(std::string_view name, size_t index, ImageFormat format);
    // Copies the disk into the new format under a staging name (thin, its
    // whole backing chain read), then renames it into place, points the
    // definition at it and deletes the old image. A throw (from `progress`:
    // a cancel) or a crash before the rename leaves the VM as it was.
    VmEntry convert_disk(const ConvertPlan& plan, const ProgressReport& progress);

    // Marks a VM (off) a template: it can no longer be started or changed,
    // only cloned; its disks become read-only files.
    VmEntry make_template(std::string_view name);

    // Why `name` cannot name a VM (it becomes a folder name), or nullopt.
    static std::optional<std::string> name_problem(std::string_view name);

private:
    // The record of a registered VM; 404 otherwise. The caller holds mutex_.
    HostDatabase::VmRecord registered_record(std::string_view name);
    // Its vm.json; vireo::Error when it is not a JSON object any more.
    static nlohmann::json read_definition(const VmEntry& vm);
    VmEntry entry(const HostDatabase::VmRecord& record);
    VmEntry entry(const HostDatabase::VmRecord& record, const std::vector<Datastore>& datastores);
    // `document` as vm.json in `folder` would be; 400 naming the field if not.
    static void check_definition(const nlohmann::json& document,
                                 const std::filesystem::path& folder);
    std::filesystem::path datastore_path(std::string_view datastore);
    // Where a VM's folder is written before it is renamed into place.
    static std::filesystem::path staging_folder(const std::filesystem::path& datastore,
                                                std::string_view name);

    std::mutex mutex_;
    HostDatabase& database_;
    DatastoreRegistry datastores_;
};

}  // namespace vireo
