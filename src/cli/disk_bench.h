#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "block/image_options.h"

namespace vireo::cli {

// `vireo disk bench`: qemu-img bench's benchmark on Vireo's block layer, with
// the same meaning of its options. `count` requests of `request_size` bytes,
// `depth` of them in flight at once (one thread, one I/O context: the path a
// guest's disk takes). Sequential: the first request
// at `offset`, each next one `step` bytes further (wrapping at the end of the
// image, as qemu-img does). Random: request-size-aligned offsets from `offset`
// to the end, from a seeded generator.
struct BenchOptions {
    std::filesystem::path file;
    std::optional<ImageFormat> format;  // probed if unset
    uint64_t count = 75000;             // qemu-img bench's defaults
    unsigned depth = 64;
    uint64_t request_size = 4096;
    std::optional<uint64_t> step;  // default: request_size
    uint64_t offset = 0;
    bool write = false;
    bool random = false;
    CacheMode cache = CacheMode::writeback;
    uint8_t pattern = 0;  // the byte written
    uint64_t seed = 1;
};

struct BenchResult {
    std::string format;
    uint64_t image_size = 0;
    uint64_t requests = 0;  // completed
    uint64_t bytes = 0;
    double elapsed_seconds = 0;
    double iops() const { return elapsed_seconds > 0 ? requests / elapsed_seconds : 0; }
    double mib_per_second() const {
        return elapsed_seconds > 0 ? bytes / elapsed_seconds / (1024.0 * 1024.0) : 0;
    }
};

// Offsets of the requests, in the order they are issued.
class BenchOffsets {
public:
    BenchOffsets(const BenchOptions& options, uint64_t image_size);
    uint64_t next();

private:
    BenchOptions options_;
    uint64_t image_size_;
    uint64_t position_;
    uint64_t random_state_;
};

// Checks the options against the image, calls `started` (may be empty) with
// the image's format and size, then runs. Throws vireo::Error ("disk bench
// <file>: ...") for bad options and IoError for failed requests.
BenchResult run_bench(const BenchOptions& options,
                      const std::function<void(const BenchResult&)>& started = {});

}  // namespace vireo::cli
