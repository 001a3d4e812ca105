#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vireo {

enum class ImageFormat { raw, qcow2 };

std::string_view format_name(ImageFormat format);
// "raw" or "qcow2"; throws vireo::Error naming `what` otherwise.
ImageFormat parse_image_format(std::string_view name, std::string_view what);

// How guest data meets the host's page cache; QEMU's cache= modes of the same name.
enum class CacheMode {
    writeback,  // through the host page cache
    // O_DIRECT for guest data (no host page cache); metadata stays buffered.
    // Still a volatile write cache below: flush() fdatasyncs as in writeback.
    none,
};

std::string_view cache_mode_name(CacheMode mode);
// "writeback" or "none"; throws vireo::Error naming `what` otherwise.
CacheMode parse_cache_mode(std::string_view name, std::string_view what);

struct OpenOptions {
    bool read_only = false;
    // Unset: probed from the file's first bytes (qcow2 magic, else raw).
    std::optional<ImageFormat> format;
    // false: take no file lock (like qemu-img -U); for read-only inspection of
    // an image a running VM holds, whose metadata may then be stale.
    bool lock = true;
    // The backing files open with the same mode.
    CacheMode cache = CacheMode::writeback;
    // Bytes of qcow2 L2 tables kept in memory per image (refcount blocks get a
    // quarter of that). 1 MiB maps 8 GiB of a 64 KiB-cluster image.
    uint64_t l2_cache_bytes = 1 << 20;
};

struct CreateOptions {
    ImageFormat format = ImageFormat::qcow2;
    // Virtual size in bytes; 0 with a backing file takes the backing file's size.
    uint64_t size = 0;
    // qcow2 only: a power of two from 512 bytes to 2 MiB.
    uint32_t cluster_size = 64 * 1024;
    // qcow2 only: stored as given; a relative name is relative to the new
    // image's folder. Empty: no backing file.
    std::string backing_file;
    // Unset: probed from the backing file. Always recorded in the image.
    std::optional<ImageFormat> backing_format;
};

}  // namespace vireo
