#include "block/snapshot_set.h"

#include <algorithm>

#include "base/error.h"

namespace vireo {

void check_snapshot_name(const std::string& name) {
    bool digits =
        std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (name.empty() || digits || name.size() > 128) {
        fail("name: '{}': a snapshot's name is 1 to 128 characters, not all digits", name);
    }
}

SnapshotInfo create_snapshot_set(const std::vector<SnapshotDisk>& disks, const std::string& name) {
    check_snapshot_name(name);
    for (const SnapshotDisk& disk : disks) {
        std::vector<SnapshotInfo> taken = disk.image->snapshots();
        if (std::any_of(taken.begin(), taken.end(),
                        [&](const SnapshotInfo& snapshot) { return snapshot.name == name; })) {
            throw SnapshotNameTaken(
                fmt::format("a snapshot '{}' exists already (on {})", name, disk.path));
        }
    }
    SnapshotInfo first;
    for (size_t i = 0; i < disks.size(); ++i) {
        try {
            SnapshotInfo made = disks[i].image->create_snapshot(name);
            if (i == 0) {
                first = made;
            }
        } catch (...) {
            for (size_t undo = 0; undo < i; ++undo) {
                disks[undo].image->delete_snapshot(name);
            }
            throw;
        }
    }
    return first;
}

}  // namespace vireo
