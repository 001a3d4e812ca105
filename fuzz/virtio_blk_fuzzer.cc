// libFuzzer target for virtio-blk: the input picks the negotiated features,
// whether the disk is read-only, and a batch of request chains (descriptor
// addresses, lengths and flags, request headers with their type and sector)
// in a small guest RAM; its remaining bytes fill the data area (headers,
// discard segments, data). With two queues (MQ), the second shares the first's
// descriptors and available ring, as a hostile driver may arrange, so the
// same chains are in flight on both. The device serves the batch against a 64 KiB disk
// in a memfd. Nothing may crash or throw, nothing outside guest RAM may be
// touched (ASan), and a read-only disk must come out unchanged.
#include <fcntl.h>
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "base/unique_fd.h"
#include "block/disk_image.h"
#include "block/io_buffers.h"
#include "block/io_context.h"
#include "devices/virtio/block.h"
#include "devices/virtio/virtio_spec.h"
#include "memory/guest_memory.h"
#include "virtio_fuzz_support.h"

namespace {

using vireo::fuzz::pick_address;

constexpr uint16_t kQueueSize = 16;
constexpr uint64_t kDescTable = 0x0;
constexpr uint64_t kAvailRing = 0x400;
constexpr uint64_t kUsedRing = 0x800;
constexpr uint64_t kSecondUsedRing = 0xc00;
constexpr uint64_t kDiskSize = 0x10000;

// A raw disk in a memfd, as the host's file would be, minus the file.
class MemfdDisk : public vireo::DiskImage {
public:
    MemfdDisk() : fd_(::memfd_create("virtio-blk-fuzz", MFD_CLOEXEC)) {
        if (!fd_ || ::ftruncate(fd_.get(), kDiskSize) != 0) {
            std::abort();
        }
    }
    uint64_t size() const override { return kDiskSize; }
    bool read_only() const override { return read_only_; }
    // Carries the request out at once; it completes when the device next
    // processes completions, as a real image's would.
    void submit(vireo::IoContext& context, const vireo::DiskRequest& request,
                vireo::DiskCompletion done) override {
        vireo::IoContext::Request& pending = context.begin(std::move(done));
        try {
            carry_out(request);
        } catch (const vireo::IoError& error) {
            context.fail(pending, error);
        }
        context.end(pending);
    }

    void reset(bool read_only, bool fail_flush) {
        read_only_ = read_only;
        fail_flush_ = fail_flush;
    }
    std::vector<uint8_t> contents() const {
        std::vector<uint8_t> bytes(kDiskSize);
        if (::pread(fd_.get(), bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(kDiskSize)) {
            std::abort();
        }
        return bytes;
    }

private:
    void carry_out(const vireo::DiskRequest& request) {
        using Type = vireo::DiskRequest::Type;
        uint64_t length = vireo::total_length(request.buffers);
        switch (request.type) {
            case Type::read:
                check(request.offset, length);
                if (::preadv(fd_.get(), request.buffers.data(),
                             static_cast<int>(request.buffers.size()),
                             static_cast<off_t>(request.offset)) != static_cast<ssize_t>(length)) {
                    throw vireo::IoError("short read");
                }
                break;
            case Type::write:
                check(request.offset, length);
                if (read_only_) {
                    std::abort();  // the device let a write through to a read-only disk
                }
                if (::pwritev(fd_.get(), request.buffers.data(),
                              static_cast<int>(request.buffers.size()),
                              static_cast<off_t>(request.offset)) != static_cast<ssize_t>(length)) {
                    throw vireo::IoError("short write");
                }
                break;
            case Type::flush:
                if (fail_flush_) {
                    throw vireo::IoError("flush failed");
                }
                break;
            case Type::discard:
            case Type::write_zeroes:
                check(request.offset, request.length);
                if (read_only_ || request.length == 0) {
                    std::abort();  // a write to a read-only disk, or an empty range, got through
                }
                if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                static_cast<off_t>(request.offset),
                                static_cast<off_t>(request.length)) != 0) {
                    throw vireo::IoError("fallocate failed");
                }
                break;
        }
    }
    static void check(uint64_t offset, uint64_t length) {
        if (offset > kDiskSize || length > kDiskSize - offset) {
            std::abort();  // the device let a range beyond the capacity through
        }
    }

    vireo::UniqueFd fd_;
    bool read_only_ = false;
    bool fail_flush_ = false;
};

std::shared_ptr<MemfdDisk>& disk() {
    static auto image = std::make_shared<MemfdDisk>();
    return image;
}

uint32_t pick_length(FuzzedDataProvider& input) {
    switch (input.ConsumeIntegralInRange(0, 5)) {
        case 0:
            return input.ConsumeIntegral<uint32_t>();
        case 1:
            return 16;  // a header or a segment
        case 2:
            return 1;  // a status byte
        case 3:
            return 512 * input.ConsumeIntegralInRange<uint32_t>(0, 8);
        default:
            return input.ConsumeIntegralInRange<uint32_t>(0, 1024);
    }
}

uint32_t pick_type(FuzzedDataProvider& input) {
    constexpr uint32_t kTypes[] = {
        vireo::virtio::kBlkTypeIn,      vireo::virtio::kBlkTypeOut,
        vireo::virtio::kBlkTypeFlush,   vireo::virtio::kBlkTypeGetId,
        vireo::virtio::kBlkTypeDiscard, vireo::virtio::kBlkTypeWriteZeroes};
    if (input.ConsumeIntegralInRange(0, 7) == 0) {
        return input.ConsumeIntegral<uint32_t>();
    }
    return kTypes[input.ConsumeIntegralInRange<size_t>(0, std::size(kTypes) - 1)];
}

uint64_t pick_sector(FuzzedDataProvider& input) {
    constexpr uint64_t kSectors = kDiskSize / 512;
    switch (input.ConsumeIntegralInRange(0, 3)) {
        case 0:
            return input.ConsumeIntegral<uint64_t>();
        case 1:
            return kSectors - input.ConsumeIntegralInRange<uint64_t>(0, 4);
        default:
            return input.ConsumeIntegralInRange<uint64_t>(0, kSectors);
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    vireo::fuzz::silence_logging();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider input(data, size);
    vireo::GuestMemory& ram = vireo::fuzz::fresh_memory();

    bool read_only = input.ConsumeBool();
    uint16_t queue_count = input.ConsumeBool() ? 2 : 1;
    disk()->reset(read_only, input.ConsumeIntegralInRange(0, 15) == 0);
    uint64_t features = input.ConsumeIntegral<uint64_t>() | uint64_t{1}
                                                                << vireo::virtio::kFeatureVersion1;

    // Requests: chains through the descriptor table, listed in the avail ring.
    struct Header {
        uint64_t address;
        vireo::virtio::BlkRequestHeader value;
    };
    std::vector<Header> headers;
    std::vector<uint16_t> heads;
    uint16_t next_desc = 0;
    while (next_desc < kQueueSize && input.ConsumeBool()) {
        uint16_t head = next_desc;
        auto count = input.ConsumeIntegralInRange<uint16_t>(1, 5);
        for (uint16_t i = 0; i < count && next_desc < kQueueSize; ++i, ++next_desc) {
            bool last = i + 1 == count || next_desc + 1 == kQueueSize;
            vireo::virtio::VirtqDesc desc{pick_address(input), pick_length(input), 0, 0};
            if (i > 0 && input.ConsumeBool()) {
                desc.flags |= vireo::virtio::kDescFlagWrite;
            }
            if (!last) {
                desc.flags |= vireo::virtio::kDescFlagNext;
                desc.next = static_cast<uint16_t>(next_desc + 1);
            }
            if (i == 0 && input.ConsumeBool()) {
                headers.push_back({desc.addr, {pick_type(input), 0, pick_sector(input)}});
            }
            ram.write_object(kDescTable + 16 * uint64_t{next_desc}, desc);
        }
        heads.push_back(head);
    }

    // The rest of the input is the data area; headers are written over it.
    std::vector<uint8_t> bytes = input.ConsumeRemainingBytes<uint8_t>();
    vireo::fuzz::fill_data_area(ram, bytes);
    for (const Header& header : headers) {
        ram.write_object(header.address, header.value);
    }
    for (size_t i = 0; i < heads.size(); ++i) {
        ram.write_object(kAvailRing + vireo::virtio::kAvailRingOffset + 2 * i, heads[i]);
    }
    ram.write_object(kAvailRing + vireo::virtio::kAvailIdxOffset,
                     static_cast<uint16_t>(heads.size()));

    std::vector<uint8_t> before = read_only ? disk()->contents() : std::vector<uint8_t>{};
    vireo::VirtioBlock block(disk(), "fuzz-serial", "virtio-blk", queue_count);
    features &= block.device_features() | uint64_t{1} << vireo::virtio::kFeatureVersion1 |
                uint64_t{1} << vireo::virtio::kFeatureIndirectDesc;
    std::vector<vireo::Virtqueue> queues;
    queues.emplace_back(ram, vireo::VirtqueueConfig{kQueueSize, kDescTable, kAvailRing, kUsedRing},
                        features);
    if (queue_count == 2) {
        queues.emplace_back(
            ram, vireo::VirtqueueConfig{kQueueSize, kDescTable, kAvailRing, kSecondUsedRing},
            features);
    }
    vireo::fuzz::NullInterrupt interrupt;
    block.activate(vireo::VirtioActivation{ram, features, queues, interrupt});
    for (uint16_t queue = 0; queue < queue_count; ++queue) {
        block.process_queue(queue);
    }
    block.reset();

    if (read_only && disk()->contents() != before) {
        std::abort();  // a read-only disk changed
    }
    return 0;
}
