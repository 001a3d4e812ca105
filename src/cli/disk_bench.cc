#include "cli/disk_bench.h"

#include <sys/uio.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/error.h"
#include "block/disk_image.h"
#include "block/image_factory.h"
#include "block/io_context.h"
#include "block/raw_image.h"

namespace vireo::cli {

namespace {

constexpr unsigned kMaxDepth = 1024;
// Cache mode none: requests aligned to the smallest logical block size, as
// qemu-img wants. A request the file's O_DIRECT alignment does not fit still
// completes, through the page cache.
constexpr uint64_t kDirectAlignment = 512;

// splitmix64: a small, well-mixed generator; the same seed gives the same offsets.
uint64_t next_random(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void check_options(const BenchOptions& o, uint64_t image_size) {
    const std::string file = o.file.string();
    if (o.count == 0) {
        fail("disk bench {}: --count must be at least 1", file);
    }
    if (o.depth == 0 || o.depth > kMaxDepth) {
        fail("disk bench {}: --depth {} is out of range (1 to {})", file, o.depth, kMaxDepth);
    }
    if (o.request_size == 0) {
        fail("disk bench {}: --size must be at least 1 byte", file);
    }
    if (o.request_size > image_size || o.offset > image_size - o.request_size) {
        fail("disk bench {}: a {}-byte request at offset {} does not fit in the image's {} bytes",
             file, o.request_size, o.offset, image_size);
    }
    if (o.random && o.step) {
        fail("disk bench {}: --step and --random exclude each other", file);
    }
    if (o.cache == CacheMode::none) {
        for (auto [what, value] :
             {std::pair{"--size", o.request_size}, std::pair{"--offset", o.offset},
              std::pair{"--step", o.step.value_or(o.request_size)}}) {
            if (value % kDirectAlignment != 0) {
                fail("disk bench {}: with --cache none, {} must be a multiple of {} ({} is not)",
                     file, what, kDirectAlignment, value);
            }
        }
    }
}

}  // namespace

BenchOffsets::BenchOffsets(const BenchOptions& options, uint64_t image_size)
    : options_(options),
      image_size_(image_size),
      position_(options.offset),
      random_state_(options.seed) {}

uint64_t BenchOffsets::next() {
    if (options_.random) {
        uint64_t slots = (image_size_ - options_.offset) / options_.request_size;
        return options_.offset + next_random(random_state_) % slots * options_.request_size;
    }
    uint64_t offset = position_;
    uint64_t step = options_.step.value_or(options_.request_size);
    position_ = (position_ + step % image_size_) % image_size_;
    // A request that would cross the end starts over at the beginning.
    if (position_ > image_size_ - options_.request_size) {
        position_ = 0;
    }
    return offset;
}

BenchResult run_bench(const BenchOptions& options,
                      const std::function<void(const BenchResult&)>& started) {
    OpenOptions open;
    open.read_only = !options.write;
    open.format = options.format;
    open.cache = options.cache;
    std::unique_ptr<DiskImage> image = open_image(options.file, open);
    BenchResult result;
    result.format = dynamic_cast<RawImage*>(image.get()) != nullptr ? "raw" : "qcow2";
    result.image_size = image->size();
    check_options(options, result.image_size);
    if (started) {
        started(result);
    }

    // One thread keeps `depth` requests in flight on one I/O context, as a
    // disk's worker does for its guest: each completion issues the next
    // request of its slot. Each slot has its own part of one buffer, filled
    // first, as qemu-img bench has it (where 4 KiB pages happen to be
    // physically adjacent decides how many segments an O_DIRECT request takes).
    auto slots = static_cast<unsigned>(std::min<uint64_t>(options.depth, options.count));
    AlignedBuffer buffer(slots * options.request_size);
    std::fill_n(buffer.data(), buffer.size(), options.pattern);
    std::vector<iovec> slot_buffers(slots);
    // A qcow2 request may take a few file operations: room for them all.
    IoContext context(std::max(64u, 2 * slots));
    BenchOffsets offsets(options, result.image_size);
    uint64_t issued = 0;
    uint64_t completed = 0;
    std::optional<IoError> failure;

    std::function<void(unsigned)> issue = [&](unsigned slot) {
        ++issued;
        iovec* data = &slot_buffers[slot];
        *data = {buffer.data() + slot * options.request_size, options.request_size};
        uint64_t offset = offsets.next();
        DiskRequest request = options.write ? DiskRequest::write(offset, {data, 1})
                                            : DiskRequest::read(offset, {data, 1});
        image->submit(context, request, [&, slot](const IoError* error) {
            if (error) {
                failure = failure.value_or(*error);
                return;
            }
            ++completed;
            if (!failure && issued < options.count) {
                issue(slot);
            }
        });
    };

    // As in qemu-img bench, the clock covers the requests only.
    using Clock = std::chrono::steady_clock;
    Clock::time_point start = Clock::now();
    for (unsigned slot = 0; slot < slots; ++slot) {
        issue(slot);
    }
    context.drain();
    Clock::time_point end = Clock::now();
    if (failure) {
        throw *failure;
    }
    result.requests = completed;
    result.bytes = result.requests * options.request_size;
    result.elapsed_seconds = std::chrono::duration<double>(end - start).count();
    return result;
}

}  // namespace vireo::cli
