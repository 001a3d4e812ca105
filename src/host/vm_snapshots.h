#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/vm_inventory.h"

namespace vireo {

// A VM's snapshot: one internal qcow2 snapshot of the same name on each of
// its writable disks (read-only disks do not change and are left out), made
// here while the VM is off, by its VMM while it runs (VmmSupervisor::
// snapshot). The caller makes sure the VM is off for all but listing; every
// refusal is an ApiError naming the disk.
struct VmSnapshot {
    std::string name;
    std::string created;  // ISO 8601, UTC, from the first disk's snapshot
    size_t disks = 0;     // on how many disks it is
};

// `running`: the VM's VMM holds its disks (read without taking their locks).
std::vector<VmSnapshot> list_snapshots(const VmEntry& vm, bool running);
// 400 for a bad name; 409 for a raw writable disk (no internal snapshots), a
// VM without writable disks or a name in use. A failure on one disk undoes the
// others.
VmSnapshot create_snapshot(const VmEntry& vm, const std::string& name);
// Every disk becomes what it was when the snapshot was taken. 404 when a
// disk lacks it (nothing is changed then).
void revert_snapshot(const VmEntry& vm, const std::string& name);
// Frees the snapshot's clusters on each disk (long on big disks: a task).
void delete_snapshot(const VmEntry& vm, const std::string& name, const ProgressReport& progress);

}  // namespace vireo
