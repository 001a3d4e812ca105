#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "block/qcow2_image.h"

namespace vireo {

// A VM's snapshot: an internal qcow2 snapshot of the same name on each of
// its writable disks, made all or none. vireod makes it on the disks of a VM
// that is off; the VMM on its open disks while it runs (vCPUs paused).
struct SnapshotDisk {
    std::string path;  // for messages
    Qcow2Image* image;
};

// A snapshot of that name is on one of the disks already.
class SnapshotNameTaken : public Error {
public:
    using Error::Error;
};

// Throws vireo::Error for a name that is empty, all digits (qcow2 ids are)
// or over 128 characters.
void check_snapshot_name(const std::string& name);

// Takes snapshot `name` of every disk in `disks`; returns the first disk's.
// Throws SnapshotNameTaken naming the disk when one has a snapshot of that
// name already (nothing is written then), vireo::Error when one fails (the
// snapshots made before it are deleted again).
SnapshotInfo create_snapshot_set(const std::vector<SnapshotDisk>& disks, const std::string& name);

}  // namespace vireo
