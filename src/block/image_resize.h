#pragma once

#include <cstdint>
#include <filesystem>

namespace vireo {

// Changes a disk image's virtual size, as `qemu-img resize` does. The image
// must not be open elsewhere (it is locked for writing while it changes).
//
// Growing: the new space reads as zeroes, even where a backing file is longer
// than the old size. qcow2 grows its L1 table when the new size needs more
// entries than its clusters hold; the new table reaches the disk before the
// header names it, so a crash leaves at worst a leaked cluster.
// Shrinking: refused unless `allow_shrink`; what lies past the new end is
// dropped (qcow2 clusters freed, raw file truncated). Internal snapshots keep
// their own size, so reverting to one restores it.
// qcow2 sizes must be multiples of 512 bytes, like QEMU's.
//
// Throws vireo::Error "disk <path>: ..." naming the defect.
void resize_image(const std::filesystem::path& path, uint64_t new_size, bool allow_shrink);

}  // namespace vireo
