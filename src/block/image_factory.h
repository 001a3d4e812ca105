#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "block/disk_image.h"
#include "block/image_options.h"
#include "block/qcow2_image.h"

namespace vireo {

// Opens a disk image and its whole backing chain. The format is probed unless
// given; backing files open read-only, in the same cache mode (relative names
// resolve against the folder of the image that names them). Refuses, with a
// message naming the file and the defect, missing backing files, backing-file
// loops, malformed or hostile images, and images another process holds (file
// locks). The result is a RawImage or a Qcow2Image (dynamic_cast for qcow2's
// extras: snapshots, check).
std::unique_ptr<DiskImage> open_image(const std::filesystem::path& path,
                                      const OpenOptions& options = {});

// Creates a new image; refuses to replace an existing file.
void create_image(const std::filesystem::path& path, const CreateOptions& options);

// The format a file holds, from its first bytes (qcow2 magic, else raw).
ImageFormat probe_format(const std::filesystem::path& path);

struct ImageInfo {
    std::filesystem::path path;
    ImageFormat format = ImageFormat::raw;
    uint64_t virtual_size = 0;
    uint32_t cluster_size = 0;  // 0 for raw
    uint64_t actual_size = 0;   // bytes the file takes on the host
    // The backing files, nearest first, as resolved paths.
    std::vector<std::filesystem::path> backing_chain;
    std::optional<ImageFormat> backing_format;
    std::vector<SnapshotInfo> snapshots;
    bool dirty = false;    // not closed cleanly (qcow2)
    bool corrupt = false;  // marked corrupt (qcow2)
};

// Opens the image read-only (`options.read_only` is forced) and describes it.
ImageInfo image_info(const std::filesystem::path& path, OpenOptions options = {});

}  // namespace vireo
