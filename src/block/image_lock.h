#pragma once

#include <filesystem>

namespace vireo {

// Takes QEMU's file locks on an open image (open file description locks on
// bytes 100+perm and 200+perm, as QEMU's file-posix driver does), so that two
// writers never share an image, nor a writer and a reader — Vireo or QEMU alike —
// while any number of readers (e.g. VMs sharing a backing file) may.
// The locks belong to `fd`'s open file description: closing it releases them.
// Throws vireo::Error "disk <path>: in use by another process (pid N)".
void lock_image(int fd, const std::filesystem::path& path, bool writable);

}  // namespace vireo
