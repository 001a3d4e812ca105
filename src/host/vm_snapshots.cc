#include "host/vm_snapshots.h"

#include <algorithm>
#include <ctime>
#include <memory>

#include "block/image_factory.h"
#include "block/snapshot_set.h"
#include "host/api_error.h"
#include "vmm/vm_config.h"

namespace vireo {
namespace {

struct OpenDisk {
    std::string path;
    std::unique_ptr<DiskImage> image;
    Qcow2Image& qcow2() const { return dynamic_cast<Qcow2Image&>(*image); }
};

// How vireod opens a VM's disks: to change them (the VM off), or only to
// read their snapshot tables, without a lock when a running VMM holds them
// (as qemu-img -U; the VMM changes those tables only while taking one).
enum class DiskAccess { write, read, read_beside_vmm };

// The VM's writable disks, open, each a qcow2 image.
std::vector<OpenDisk> writable_disks(const VmEntry& vm, DiskAccess access) {
    VmConfig config = VmConfig::from_file(vm.definition().string());
    std::vector<OpenDisk> disks;
    for (size_t i = 0; i < config.disks.size(); ++i) {
        const VmConfig::Disk& disk = config.disks[i];
        if (disk.read_only) {
            continue;
        }
        OpenOptions options;
        options.read_only = access != DiskAccess::write;
        options.lock = access != DiskAccess::read_beside_vmm;
        std::unique_ptr<DiskImage> image;
        try {
            image = open_image(disk.path, options);
        } catch (const Error& error) {
            refuse(409, "VM '{}': disks[{}]: {}", vm.name, i, error.what());
        }
        if (dynamic_cast<Qcow2Image*>(image.get()) == nullptr) {
            refuse(409,
                   "VM '{}': disks[{}] ({}) is raw, which has no snapshots: convert it to qcow2 "
                   "(vireo disk convert) first",
                   vm.name, i, disk.path);
        }
        disks.push_back({disk.path, std::move(image)});
    }
    if (disks.empty()) {
        refuse(409, "VM '{}' has no writable disk: nothing to snapshot", vm.name);
    }
    return disks;
}

bool has_snapshot(const Qcow2Image& image, const std::string& name) {
    std::vector<SnapshotInfo> snapshots = image.snapshots();
    return std::any_of(snapshots.begin(), snapshots.end(),
                       [&](const SnapshotInfo& snapshot) { return snapshot.name == name; });
}

std::string iso_time(uint32_t seconds) {
    std::time_t time = seconds;
    std::tm parts{};
    gmtime_r(&time, &parts);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &parts);
    return text;
}

// Every disk has it, or 404 naming the first that does not.
void require_everywhere(const VmEntry& vm, const std::vector<OpenDisk>& disks,
                        const std::string& name) {
    for (const OpenDisk& disk : disks) {
        if (!has_snapshot(disk.qcow2(), name)) {
            refuse(404, "VM '{}': no snapshot '{}' on its disk {}", vm.name, name, disk.path);
        }
    }
}

}  // namespace

std::vector<VmSnapshot> list_snapshots(const VmEntry& vm, bool running) {
    std::vector<OpenDisk> disks =
        writable_disks(vm, running ? DiskAccess::read_beside_vmm : DiskAccess::read);
    std::vector<VmSnapshot> snapshots;
    for (const SnapshotInfo& info : disks[0].qcow2().snapshots()) {
        size_t count = static_cast<size_t>(std::count_if(
            disks.begin(), disks.end(),
            [&](const OpenDisk& disk) { return has_snapshot(disk.qcow2(), info.name); }));
        snapshots.push_back({info.name, iso_time(info.date_sec), count});
    }
    return snapshots;
}

VmSnapshot create_snapshot(const VmEntry& vm, const std::string& name) {
    try {
        check_snapshot_name(name);
    } catch (const Error& error) {
        refuse(400, "{}", error.what());
    }
    std::vector<OpenDisk> disks = writable_disks(vm, DiskAccess::write);
    std::vector<SnapshotDisk> set;
    for (const OpenDisk& disk : disks) {
        set.push_back({disk.path, &disk.qcow2()});
    }
    try {
        SnapshotInfo first = create_snapshot_set(set, name);
        return {name, iso_time(first.date_sec), disks.size()};
    } catch (const SnapshotNameTaken& taken) {
        refuse(409, "VM '{}': {}", vm.name, taken.what());
    }
}

void revert_snapshot(const VmEntry& vm, const std::string& name) {
    std::vector<OpenDisk> disks = writable_disks(vm, DiskAccess::write);
    require_everywhere(vm, disks, name);
    for (const OpenDisk& disk : disks) {
        disk.qcow2().revert_to_snapshot(name);
    }
}

void delete_snapshot(const VmEntry& vm, const std::string& name, const ProgressReport& progress) {
    std::vector<OpenDisk> disks = writable_disks(vm, DiskAccess::write);
    require_everywhere(vm, disks, name);
    for (size_t i = 0; i < disks.size(); ++i) {
        progress(static_cast<double>(i) / static_cast<double>(disks.size()));
        disks[i].qcow2().delete_snapshot(name);
    }
}

}  // namespace vireo
