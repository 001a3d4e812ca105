#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"

struct iovec;

namespace vireo {

// A failed read/write/flush on the host side.
class IoError : public Error {
public:
    using Error::Error;
};

class IoContext;

// One request to a disk (DiskImage::submit).
struct DiskRequest {
    enum class Type : uint8_t { read, write, flush, discard, write_zeroes };
    Type type = Type::read;
    uint64_t offset = 0;
    // read and write: the data, scattered over memory (guest RAM, a buffer).
    // The memory must stay valid, and untouched, until the request completes.
    std::span<const iovec> buffers;
    // discard and write_zeroes: the range's length; may_unmap lets
    // write_zeroes free the space.
    uint64_t length = 0;
    bool may_unmap = false;

    static DiskRequest read(uint64_t offset, std::span<const iovec> buffers) {
        return {Type::read, offset, buffers, 0, false};
    }
    static DiskRequest write(uint64_t offset, std::span<const iovec> buffers) {
        return {Type::write, offset, buffers, 0, false};
    }
    static DiskRequest flush() { return {Type::flush, 0, {}, 0, false}; }
    static DiskRequest discard(uint64_t offset, uint64_t length) {
        return {Type::discard, offset, {}, length, false};
    }
    static DiskRequest write_zeroes(uint64_t offset, uint64_t length, bool may_unmap) {
        return {Type::write_zeroes, offset, {}, length, may_unmap};
    }
};

// Runs once, on the IoContext's thread, when a request is done: with nullptr,
// or with why it failed.
using DiskCompletion = std::function<void(const IoError* failure)>;

// A virtual disk's contents, whatever the file format (raw, qcow2 with its
// backing chain). Offsets and lengths are in bytes of the virtual disk.
//
// Requests are asynchronous: submit() starts one on an IoContext (the calling
// thread's) and returns; many may be in flight, and they complete in any
// order. A write's data reaches the disk in no particular order relative to
// other writes in flight; a flush makes stable every write that completed
// before it was submitted. A discard or write-zeroes waits for nothing: the
// caller submits it with no other request of that context in flight (it may
// free space a request in flight still uses). The synchronous calls
// (read, write...) submit on the thread's own context and wait.
//
// Thread safety: requests may come from several threads at once (each with
// its own context: a disk's I/O thread, a live snapshot); the image guards its
// own metadata. Failures of the host (EIO, ENOSPC) and requests outside the
// disk complete with an IoError; callers that serve a guest turn it into an
// error status for that request, never a crash.
class DiskImage {
public:
    virtual ~DiskImage() = default;

    virtual uint64_t size() const = 0;
    virtual bool read_only() const = 0;

    // Starts `request`; `done` runs from context.process_completions(). Never
    // throws for a bad or failing request: `done` gets the IoError.
    virtual void submit(IoContext& context, const DiskRequest& request, DiskCompletion done) = 0;

    void read(uint64_t offset, std::span<uint8_t> data);
    void write(uint64_t offset, std::span<const uint8_t> data);
    // Reads as zeroes afterwards; may_unmap lets the image free the space.
    void write_zeroes(uint64_t offset, uint64_t length, bool may_unmap);
    // The guest no longer needs the range: contents become undefined (zeroes
    // where the image can free space, old data otherwise).
    void discard(uint64_t offset, uint64_t length);
    // Everything written before this call is on stable storage when it returns.
    void flush();

private:
    void run(const DiskRequest& request);
};

}  // namespace vireo
