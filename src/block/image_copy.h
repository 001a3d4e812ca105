#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "block/image_options.h"

namespace vireo {

struct CopyOptions {
    ImageFormat format = ImageFormat::qcow2;
    uint32_t cluster_size = 64 * 1024;  // qcow2 targets
};

struct CopyResult {
    uint64_t virtual_size = 0;
    uint64_t data_bytes = 0;  // written to the target
    uint64_t zero_bytes = 0;  // read as zeroes and left unallocated
};

// Called after each chunk with the bytes of the source done so far.
using CopyProgress = std::function<void(uint64_t done, uint64_t total)>;

// Copies what `source` reads as (through its whole backing chain) into a new
// image `target` with no backing file: a full clone, or a format conversion.
// Runs of zeroes are not written, so the target stays thin (unallocated
// clusters in qcow2, holes in raw). Refuses an existing target; removes a
// target it created if the copy fails.
CopyResult copy_image(const std::filesystem::path& source, const std::filesystem::path& target,
                      const CopyOptions& options, const CopyProgress& progress);

}  // namespace vireo
