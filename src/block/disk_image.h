#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"

namespace vireo {

// A virtual disk's contents, whatever the file format (raw, qcow2 with its
// backing chain). Offsets and lengths are in bytes of the virtual disk.
//
// Thread safety: the methods may be called from several threads at once (a
// disk's I/O thread, a live snapshot); the image guards its own metadata.
// Failures of the host (EIO, ENOSPC) throw IoError; callers that serve a guest
// turn them into an error status for that request, never a crash.
class DiskImage {
public:
    virtual ~DiskImage() = default;

    virtual uint64_t size() const = 0;
    virtual bool read_only() const = 0;

    virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
    // Reads as zeroes afterwards; may_unmap lets the image free the space.
    virtual void write_zeroes(uint64_t offset, uint64_t length, bool may_unmap) = 0;
    // The guest no longer needs the range: contents become undefined (zeroes
    // where the image can free space, old data otherwise).
    virtual void discard(uint64_t offset, uint64_t length) = 0;
    // Everything written before this call is on stable storage when it returns.
    virtual void flush() = 0;
};

// A failed read/write/flush on the host side.
class IoError : public Error {
public:
    using Error::Error;
};

}  // namespace vireo
