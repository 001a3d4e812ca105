#pragma once

#include <liburing.h>

#include <cstdint>
#include <span>

namespace vireo {

// One io_uring (liburing), used by one thread at a time to run a batch of
// reads and writes and wait for all of them.
class IoRing {
public:
    struct Op {
        int fd;
        bool write;
        uint64_t offset;
        uint8_t* data;
        size_t length;
        // Filled in by run(): bytes done, or -errno.
        int64_t result = 0;
    };

    IoRing();
    ~IoRing();
    IoRing(const IoRing&) = delete;
    IoRing& operator=(const IoRing&) = delete;

    // Submits every op (in chunks of the ring's size) and waits for all.
    // A short transfer is reported in Op::result; the caller completes it.
    void run(std::span<Op> ops);

private:
    static constexpr unsigned kEntries = 64;
    io_uring ring_{};
};

}  // namespace vireo
