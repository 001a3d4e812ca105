#include "devices/virtio/block.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/byte_size.h"
#include "base/error.h"
#include "block/block_test_support.h"
#include "block/image_factory.h"
#include "block/io_buffers.h"
#include "block/io_context.h"
#include "devices/pci/msix.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/virtio_spec.h"
#include "driver_queue.h"
#include "pci/fake_interrupts.h"

namespace vireo {
namespace {

using testing::Buf;
using testing::DriverQueue;

// A disk in host memory that records what the device asked of it.
class MemoryDisk : public DiskImage {
public:
    struct Call {
        std::string what;  // "discard", "zeroes", "zeroes+unmap"
        uint64_t offset;
        uint64_t length;
        bool operator==(const Call&) const = default;
    };

    MemoryDisk(uint64_t size, bool read_only) : bytes(size), read_only_(read_only) {
        for (size_t i = 0; i < bytes.size(); ++i) {
            bytes[i] = static_cast<uint8_t>(i * 7 + 3);
        }
    }

    uint64_t size() const override { return bytes.size(); }
    bool read_only() const override { return read_only_; }
    // Carries the request out at once; it completes then, or, while `holding`,
    // when the test calls release().
    void submit(IoContext& context, const DiskRequest& request, DiskCompletion done) override {
        IoContext::Request& pending = context.begin(std::move(done));
        try {
            carry_out(request);
        } catch (const IoError& error) {
            context.fail(pending, error);
        }
        if (holding) {
            held.push_back(context.part(pending));
        }
        context.end(pending);
    }
    // Completes the held request at `index` (in submission order).
    void release(size_t index) {
        DiskCompletion done = std::exchange(held.at(index), {});
        ASSERT_TRUE(done) << "request " << index << " released twice";
        done(nullptr);
    }

    // The thread that last read or wrote, and its name.
    std::thread::id io_thread() {
        std::lock_guard lock(mutex_);
        return io_thread_;
    }
    std::string io_thread_name() {
        std::lock_guard lock(mutex_);
        return io_thread_name_;
    }

    std::vector<uint8_t> bytes;
    std::vector<Call> calls;
    int flushes = 0;
    std::vector<std::string> order;  // "read@sector", "write@sector", "flush", in submission order
    bool failing = false;  // every operation fails with IoError, as a dying host disk would
    bool holding = false;
    std::vector<DiskCompletion> held;

private:
    void carry_out(const DiskRequest& request) {
        uint64_t length = total_length(request.buffers);
        switch (request.type) {
            case DiskRequest::Type::read:
                note_thread();
                order.push_back(fmt::format("read@{}", request.offset / 512));
                check(request.offset, length);
                copy_into(request.buffers, std::span(bytes).subspan(request.offset, length));
                break;
            case DiskRequest::Type::write:
                note_thread();
                order.push_back(fmt::format("write@{}", request.offset / 512));
                check(request.offset, length);
                copy_from(request.buffers, std::span(bytes).subspan(request.offset, length));
                break;
            case DiskRequest::Type::flush:
                order.push_back("flush");
                check(0, 0);
                ++flushes;
                break;
            case DiskRequest::Type::write_zeroes:
                check(request.offset, request.length);
                std::fill_n(bytes.begin() + static_cast<ptrdiff_t>(request.offset), request.length,
                            0);
                calls.push_back({request.may_unmap ? "zeroes+unmap" : "zeroes", request.offset,
                                 request.length});
                break;
            case DiskRequest::Type::discard:
                check(request.offset, request.length);
                calls.push_back({"discard", request.offset, request.length});
                break;
        }
    }
    void check(uint64_t offset, uint64_t length) const {
        if (failing) {
            throw IoError("EIO");
        }
        // The device must have checked the range before calling.
        if (offset > bytes.size() || length > bytes.size() - offset) {
            ADD_FAILURE() << "access beyond the disk: " << offset << "+" << length;
            throw IoError("beyond the disk");
        }
    }
    void note_thread() {
        std::lock_guard lock(mutex_);
        io_thread_ = std::this_thread::get_id();
        char name[16] = {};
        pthread_getname_np(pthread_self(), name, sizeof(name));
        io_thread_name_ = name;
    }

    bool read_only_;
    std::mutex mutex_;
    std::thread::id io_thread_;
    std::string io_thread_name_;
};

class CountingInterrupt : public VirtioInterrupt {
public:
    void signal_used(uint16_t queue) override { used.push_back(queue); }
    void signal_config_change() override { ++config_changes; }
    std::vector<uint16_t> used;
    int config_changes = 0;
};

constexpr uint64_t kRings = 0x10000;
constexpr uint64_t kHeaders = 0x80000;   // request headers and segments
constexpr uint64_t kStatuses = 0x90000;  // one status byte per request
constexpr uint64_t kData = 0x100000;
constexpr uint64_t kDiskSize = 1 * MiB;
constexpr uint64_t kSectors = kDiskSize / 512;
constexpr uint64_t kAllFeatures =
    uint64_t{1} << virtio::kBlkFeatureFlush | uint64_t{1} << virtio::kBlkFeatureDiscard |
    uint64_t{1} << virtio::kBlkFeatureWriteZeroes | uint64_t{1} << virtio::kBlkFeatureRo |
    uint64_t{1} << virtio::kBlkFeatureSegMax | uint64_t{1} << virtio::kBlkFeatureBlkSize;

bool has(uint64_t features, int bit) {
    return (features >> bit) & 1;
}

// A driver with one request queue over a VirtioBlock, driven on the test thread.
class VirtioBlockTest : public ::testing::Test {
protected:
    void start(bool read_only = false, std::string serial = "vireo-disk-0",
               uint64_t features = kAllFeatures) {
        disk = std::make_shared<MemoryDisk>(kDiskSize, read_only);
        start_on(disk, std::move(serial), features);
    }
    void start_on(std::shared_ptr<DiskImage> image, std::string serial = "vireo-disk-0",
                  uint64_t features = kAllFeatures) {
        block = std::make_unique<VirtioBlock>(std::move(image), std::move(serial));
        queues.emplace_back(memory, driver.config(), features & block->device_features());
        block->activate(
            VirtioActivation{memory, features & block->device_features(), queues, interrupt});
    }

    // Writes a header for request `index` and returns its buffer.
    Buf header(unsigned index, uint32_t type, uint64_t sector) {
        virtio::BlkRequestHeader h{type, 0, sector};
        uint64_t address = kHeaders + 0x100 * uint64_t{index};
        EXPECT_TRUE(memory.write_object(address, h));
        return {address, sizeof(h)};
    }
    Buf status_buf(unsigned index) {
        uint64_t address = kStatuses + index;
        EXPECT_TRUE(memory.write_object(address, uint8_t{0xee}));
        return {address, 1, true};
    }
    uint8_t status(unsigned index) {
        return memory.read_object<uint8_t>(kStatuses + index).value();
    }

    // Submits one chain, runs the device, returns the used length.
    uint32_t submit(const std::vector<Buf>& bufs) {
        uint16_t before = driver.used_idx();
        driver.make_available(driver.add_chain(bufs));
        block->process_queue(0);
        EXPECT_EQ(driver.used_idx(), static_cast<uint16_t>(before + 1));
        return driver.used(before).len;
    }
    // A request with a data part of `data` buffers; returns the status byte.
    uint8_t request(uint32_t type, uint64_t sector, std::vector<Buf> data = {}) {
        unsigned index = next_++;
        std::vector<Buf> bufs{header(index, type, sector)};
        bufs.insert(bufs.end(), data.begin(), data.end());
        bufs.push_back(status_buf(index));
        last_len = submit(bufs);
        return status(index);
    }
    uint8_t segments(uint32_t type, const std::vector<virtio::BlkDiscardWriteZeroes>& list) {
        uint64_t address = kHeaders + 0x8000;
        EXPECT_TRUE(memory.write(address, list.data(), list.size() * sizeof(list[0])));
        return request(type, 0,
                       {{address, static_cast<uint32_t>(list.size() * sizeof(list[0])), false}});
    }

    std::vector<uint8_t> guest_bytes(uint64_t address, uint64_t length) {
        std::vector<uint8_t> bytes(length);
        EXPECT_TRUE(memory.read(address, bytes.data(), length));
        return bytes;
    }
    std::vector<uint8_t> disk_bytes(uint64_t offset, uint64_t length) {
        return {disk->bytes.begin() + static_cast<ptrdiff_t>(offset),
                disk->bytes.begin() + static_cast<ptrdiff_t>(offset + length)};
    }
    void fill_guest(uint64_t address, uint64_t length, uint8_t value) {
        std::vector<uint8_t> bytes(length, value);
        EXPECT_TRUE(memory.write(address, bytes.data(), length));
    }

    GuestMemory memory = GuestMemory::create({{0, 16 * MiB}});
    DriverQueue driver{memory, 64, kRings};
    std::vector<Virtqueue> queues;
    CountingInterrupt interrupt;
    std::shared_ptr<MemoryDisk> disk;
    std::unique_ptr<VirtioBlock> block;
    uint32_t last_len = 0;
    unsigned next_ = 0;
};

virtio::BlkConfig read_config(VirtioBlock& block) {
    virtio::BlkConfig config{};
    EXPECT_EQ(block.config_size(), sizeof(config));
    block.config_read(0, {reinterpret_cast<uint8_t*>(&config), sizeof(config)});
    return config;
}

TEST(VirtioBlock, OffersWhatAWritableDiskCanDo) {
    VirtioBlock block(std::make_shared<MemoryDisk>(kDiskSize + 100, false), "serial");
    EXPECT_EQ(block.device_type(), virtio::kDeviceBlock);
    EXPECT_EQ(block.queue_count(), 1);
    uint64_t features = block.device_features();
    for (int bit : {virtio::kBlkFeatureSegMax, virtio::kBlkFeatureBlkSize, virtio::kBlkFeatureFlush,
                    virtio::kBlkFeatureDiscard, virtio::kBlkFeatureWriteZeroes}) {
        EXPECT_TRUE(has(features, bit)) << bit;
    }
    for (int bit : {virtio::kBlkFeatureRo, virtio::kBlkFeatureMq, virtio::kBlkFeatureSizeMax}) {
        EXPECT_FALSE(has(features, bit)) << bit;
    }
    virtio::BlkConfig config = read_config(block);
    EXPECT_EQ(config.capacity, kSectors);  // the 100-byte tail is no whole sector
    EXPECT_EQ(config.seg_max, VirtioBlock::kSegMax);
    EXPECT_EQ(config.blk_size, 512u);
    EXPECT_EQ(config.max_discard_sectors, VirtioBlock::kMaxDiscardSectors);
    EXPECT_EQ(config.max_discard_seg, VirtioBlock::kMaxDiscardSegments);
    EXPECT_EQ(config.discard_sector_alignment, VirtioBlock::kDiscardAlignmentSectors);
    EXPECT_EQ(config.max_write_zeroes_sectors, VirtioBlock::kMaxWriteZeroesSectors);
    EXPECT_EQ(config.max_write_zeroes_seg, VirtioBlock::kMaxWriteZeroesSegments);
    EXPECT_EQ(config.write_zeroes_may_unmap, 1);
    EXPECT_EQ(config.num_queues, 0);  // no MQ

    // Partial reads at any offset, as a driver's 4-byte accesses do.
    uint32_t seg_max = 0;
    block.config_read(offsetof(virtio::BlkConfig, seg_max),
                      {reinterpret_cast<uint8_t*>(&seg_max), 4});
    EXPECT_EQ(seg_max, VirtioBlock::kSegMax);
}

TEST(VirtioBlock, OffersReadOnlyWithoutDiscardOrWriteZeroes) {
    VirtioBlock block(std::make_shared<MemoryDisk>(kDiskSize, true), "");
    uint64_t features = block.device_features();
    EXPECT_TRUE(has(features, virtio::kBlkFeatureRo));
    EXPECT_TRUE(has(features, virtio::kBlkFeatureFlush));
    EXPECT_FALSE(has(features, virtio::kBlkFeatureDiscard));
    EXPECT_FALSE(has(features, virtio::kBlkFeatureWriteZeroes));
    virtio::BlkConfig config = read_config(block);
    EXPECT_EQ(config.capacity, kSectors);
    EXPECT_EQ(config.max_discard_sectors, 0u);
    EXPECT_EQ(config.write_zeroes_may_unmap, 0);
}

TEST(VirtioBlock, RefusesASerialGetIdCannotCarry) {
    auto disk = std::make_shared<MemoryDisk>(kDiskSize, false);
    EXPECT_NO_THROW(VirtioBlock(disk, std::string(20, 'x')));
    EXPECT_THROW(VirtioBlock(disk, std::string(21, 'x')), Error);
    EXPECT_THROW(VirtioBlock(disk, "tab\there"), Error);
    EXPECT_THROW(VirtioBlock(disk, "caf\xc3\xa9"), Error);
    EXPECT_EQ(VirtioBlock::serial_problem("ok-serial_1"), std::nullopt);
    EXPECT_NE(VirtioBlock::serial_problem(std::string(21, 'a')), std::nullopt);
}

TEST_F(VirtioBlockTest, WritesAndReadsBackAcrossSeveralBuffers) {
    start();
    // 3 sectors from three buffers of different sizes, at sector 10.
    fill_guest(kData, 512, 0xa1);
    fill_guest(kData + 0x1000, 1024, 0xb2);
    ASSERT_EQ(request(virtio::kBlkTypeOut, 10,
                      {{kData, 512, false}, {kData + 0x1000, 512, false}, {kData + 0x1200, 512}}),
              virtio::kBlkStatusOk);
    EXPECT_EQ(last_len, 1u);  // only the status was written
    EXPECT_EQ(disk_bytes(10 * 512, 512), std::vector<uint8_t>(512, 0xa1));
    EXPECT_EQ(disk_bytes(11 * 512, 1024), std::vector<uint8_t>(1024, 0xb2));
    std::vector<uint8_t> untouched = MemoryDisk(kDiskSize, false).bytes;
    EXPECT_EQ(disk_bytes(9 * 512, 512),
              std::vector<uint8_t>(untouched.begin() + 9 * 512, untouched.begin() + 10 * 512));
    EXPECT_EQ(disk_bytes(13 * 512, 512),
              std::vector<uint8_t>(untouched.begin() + 13 * 512, untouched.begin() + 14 * 512));

    // Read sectors 9..13 back into two buffers: 1024 + 1536 bytes.
    ASSERT_EQ(request(virtio::kBlkTypeIn, 9,
                      {{kData + 0x4000, 1024, true}, {kData + 0x8000, 1536, true}}),
              virtio::kBlkStatusOk);
    EXPECT_EQ(last_len, 2560u + 1);
    EXPECT_EQ(guest_bytes(kData + 0x4000 + 512, 512), std::vector<uint8_t>(512, 0xa1));
    EXPECT_EQ(guest_bytes(kData + 0x8000, 1024), std::vector<uint8_t>(1024, 0xb2));
    EXPECT_EQ(guest_bytes(kData + 0x4000, 512), disk_bytes(9 * 512, 512));
    EXPECT_EQ(interrupt.used.size(), 2u);
}

TEST_F(VirtioBlockTest, TakesAnyFramingOfHeaderDataAndStatus) {
    start();
    // The header split 5 + 11 bytes, the status in the same buffer as the
    // end of the data (the last byte of the last writable buffer).
    virtio::BlkRequestHeader h{virtio::kBlkTypeIn, 0, 3};
    ASSERT_TRUE(memory.write_object(kHeaders, h));
    ASSERT_TRUE(memory.write_object(kData + 0x3000 + 512, uint8_t{0xee}));
    uint32_t len = submit(
        {{kHeaders, 5}, {kHeaders + 5, 11}, {kData, 256, true}, {kData + 0x3000 + 256, 257, true}});
    EXPECT_EQ(len, 513u);
    EXPECT_EQ(memory.read_object<uint8_t>(kData + 0x3000 + 512), virtio::kBlkStatusOk);
    EXPECT_EQ(guest_bytes(kData, 256), disk_bytes(3 * 512, 256));
    EXPECT_EQ(guest_bytes(kData + 0x3000 + 256, 256), disk_bytes(3 * 512 + 256, 256));

    // A write whose data shares the header's buffer.
    std::vector<uint8_t> bytes(16 + 512, 0x5c);
    virtio::BlkRequestHeader w{virtio::kBlkTypeOut, 0, 7};
    std::memcpy(bytes.data(), &w, sizeof(w));
    ASSERT_TRUE(memory.write(kData + 0x6000, bytes.data(), bytes.size()));
    EXPECT_EQ(submit({{kData + 0x6000, 16 + 512}, status_buf(50)}), 1u);
    EXPECT_EQ(status(50), virtio::kBlkStatusOk);
    EXPECT_EQ(disk_bytes(7 * 512, 512), std::vector<uint8_t>(512, 0x5c));
}

TEST_F(VirtioBlockTest, RefusesRangesBeyondTheCapacity) {
    start();
    std::vector<uint8_t> before = disk->bytes;
    fill_guest(kData, 1024, 0x77);
    // The last sector is fine; one past it, or straddling the end, is not.
    EXPECT_EQ(request(virtio::kBlkTypeIn, kSectors - 1, {{kData + 0x2000, 512, true}}),
              virtio::kBlkStatusOk);
    EXPECT_EQ(request(virtio::kBlkTypeIn, kSectors, {{kData + 0x2000, 512, true}}),
              virtio::kBlkStatusIoErr);
    EXPECT_EQ(request(virtio::kBlkTypeOut, kSectors - 1, {{kData, 1024}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(request(virtio::kBlkTypeOut, kSectors, {{kData, 512}}), virtio::kBlkStatusIoErr);
    // sector * 512 overflows 64 bits: still refused, nothing touched.
    EXPECT_EQ(request(virtio::kBlkTypeOut, uint64_t{1} << 55, {{kData, 512}}),
              virtio::kBlkStatusIoErr);
    EXPECT_EQ(request(virtio::kBlkTypeOut, ~uint64_t{0}, {{kData, 512}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(request(virtio::kBlkTypeIn, ~uint64_t{0} / 512 + 1, {{kData, 512, true}}),
              virtio::kBlkStatusIoErr);
    // Data that is not whole sectors.
    EXPECT_EQ(request(virtio::kBlkTypeOut, 0, {{kData, 511}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(request(virtio::kBlkTypeIn, 0, {{kData, 100, true}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(disk->bytes, before);
    // No data at all, at the very end: an empty read is in range.
    EXPECT_EQ(request(virtio::kBlkTypeIn, kSectors), virtio::kBlkStatusOk);
}

TEST_F(VirtioBlockTest, ReadOnlyDiskRefusesEveryKindOfWrite) {
    start(/*read_only=*/true);
    std::vector<uint8_t> before = disk->bytes;
    fill_guest(kData, 512, 0x11);
    EXPECT_EQ(request(virtio::kBlkTypeOut, 0, {{kData, 512}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(segments(virtio::kBlkTypeDiscard, {{0, 8, 0}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(segments(virtio::kBlkTypeWriteZeroes, {{0, 8, 0}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(disk->bytes, before);
    EXPECT_TRUE(disk->calls.empty());
    // Reads, flushes and GET_ID work.
    EXPECT_EQ(request(virtio::kBlkTypeIn, 0, {{kData, 512, true}}), virtio::kBlkStatusOk);
    EXPECT_EQ(guest_bytes(kData, 512), disk_bytes(0, 512));
    EXPECT_EQ(request(virtio::kBlkTypeFlush, 0), virtio::kBlkStatusOk);
    EXPECT_EQ(request(virtio::kBlkTypeGetId, 0, {{kData, 20, true}}), virtio::kBlkStatusOk);
}

TEST_F(VirtioBlockTest, FlushReachesTheImage) {
    start();
    EXPECT_EQ(request(virtio::kBlkTypeFlush, 0), virtio::kBlkStatusOk);
    EXPECT_EQ(disk->flushes, 1);
    EXPECT_EQ(last_len, 1u);
    // With FLUSH negotiated, writes are not flushed one by one.
    EXPECT_EQ(request(virtio::kBlkTypeOut, 0, {{kData, 512}}), virtio::kBlkStatusOk);
    EXPECT_EQ(disk->flushes, 1);
}

TEST_F(VirtioBlockTest, WithoutFlushNegotiatedEveryWriteIsStable) {
    start(false, "s", kAllFeatures & ~(uint64_t{1} << virtio::kBlkFeatureFlush));
    EXPECT_EQ(request(virtio::kBlkTypeOut, 0, {{kData, 512}}), virtio::kBlkStatusOk);
    EXPECT_EQ(disk->flushes, 1);
    EXPECT_EQ(segments(virtio::kBlkTypeWriteZeroes, {{0, 8, 0}}), virtio::kBlkStatusOk);
    EXPECT_EQ(disk->flushes, 2);
    EXPECT_EQ(request(virtio::kBlkTypeIn, 0, {{kData, 512, true}}), virtio::kBlkStatusOk);
    EXPECT_EQ(disk->flushes, 2);
}

TEST_F(VirtioBlockTest, GetIdReturnsTheSerialNulPadded) {
    start(false, "disk-A");
    fill_guest(kData, 32, 0xff);
    ASSERT_EQ(request(virtio::kBlkTypeGetId, 0, {{kData, 20, true}}), virtio::kBlkStatusOk);
    EXPECT_EQ(last_len, 21u);
    std::vector<uint8_t> expected(20, 0);
    std::memcpy(expected.data(), "disk-A", 6);
    EXPECT_EQ(guest_bytes(kData, 20), expected);
    EXPECT_EQ(guest_bytes(kData + 20, 1), std::vector<uint8_t>{0xff});
}

TEST_F(VirtioBlockTest, GetIdOfTwentyCharactersHasNoTerminator) {
    start(false, "ABCDEFGHIJ0123456789");
    fill_guest(kData, 64, 0xff);
    // A larger buffer gets only the 20 bytes.
    ASSERT_EQ(request(virtio::kBlkTypeGetId, 0, {{kData, 64, true}}), virtio::kBlkStatusOk);
    EXPECT_EQ(last_len, 21u);
    auto id = guest_bytes(kData, 21);
    EXPECT_EQ(std::string(id.begin(), id.begin() + 20), "ABCDEFGHIJ0123456789");
    EXPECT_EQ(id[20], 0xff);
}

TEST_F(VirtioBlockTest, DiscardsAndZeroesSegments) {
    start();
    EXPECT_EQ(segments(virtio::kBlkTypeDiscard, {{8, 16, 0}, {100, 8, 0}}), virtio::kBlkStatusOk);
    EXPECT_EQ(segments(virtio::kBlkTypeWriteZeroes, {{40, 2, 0}, {50, 1, virtio::kBlkFlagUnmap}}),
              virtio::kBlkStatusOk);
    EXPECT_EQ(disk->calls, (std::vector<MemoryDisk::Call>{{"discard", 8 * 512, 16 * 512},
                                                          {"discard", 100 * 512, 8 * 512},
                                                          {"zeroes", 40 * 512, 2 * 512},
                                                          {"zeroes+unmap", 50 * 512, 512}}));
    EXPECT_EQ(disk_bytes(40 * 512, 1024), std::vector<uint8_t>(1024, 0));
    EXPECT_EQ(request(virtio::kBlkTypeIn, 50, {{kData, 512, true}}), virtio::kBlkStatusOk);
    EXPECT_EQ(guest_bytes(kData, 512), std::vector<uint8_t>(512, 0));
    // Empty segments are not handed to the image (which may refuse them).
    disk->calls.clear();
    EXPECT_EQ(segments(virtio::kBlkTypeDiscard, {{8, 0, 0}}), virtio::kBlkStatusOk);
    EXPECT_EQ(segments(virtio::kBlkTypeWriteZeroes, {{kSectors, 0, 0}}), virtio::kBlkStatusOk);
    EXPECT_TRUE(disk->calls.empty());
    // Up to the last sector.
    EXPECT_EQ(segments(virtio::kBlkTypeWriteZeroes, {{kSectors - 8, 8, 0}}), virtio::kBlkStatusOk);
}

TEST_F(VirtioBlockTest, RefusesBadSegmentsBeforeDoingAny) {
    start();
    using S = virtio::BlkDiscardWriteZeroes;
    // unmap on a discard, and any reserved flag: UNSUPP (5.2.6.2).
    EXPECT_EQ(segments(virtio::kBlkTypeDiscard, {S{0, 8, 0}, S{8, 8, virtio::kBlkFlagUnmap}}),
              virtio::kBlkStatusUnsupp);
    EXPECT_EQ(segments(virtio::kBlkTypeWriteZeroes, {S{0, 8, 2}}), virtio::kBlkStatusUnsupp);
    // A segment beyond the capacity, or over the per-segment limit: IOERR,
    // and the good segment before it was not carried out either.
    EXPECT_EQ(segments(virtio::kBlkTypeWriteZeroes, {S{0, 8, 0}, S{kSectors - 4, 8, 0}}),
              virtio::kBlkStatusIoErr);
    EXPECT_EQ(segments(virtio::kBlkTypeDiscard, {S{0, 8, 0}, S{~uint64_t{0} - 1, 8, 0}}),
              virtio::kBlkStatusIoErr);
    EXPECT_EQ(segments(virtio::kBlkTypeDiscard, {S{0, VirtioBlock::kMaxDiscardSectors + 1, 0}}),
              virtio::kBlkStatusIoErr);
    // Too many segments, none, or a partial one.
    std::vector<S> many(VirtioBlock::kMaxDiscardSegments + 1, S{0, 1, 0});
    EXPECT_EQ(segments(virtio::kBlkTypeDiscard, many), virtio::kBlkStatusIoErr);
    EXPECT_EQ(request(virtio::kBlkTypeDiscard, 0), virtio::kBlkStatusIoErr);
    EXPECT_EQ(request(virtio::kBlkTypeDiscard, 0, {{kHeaders + 0x8000, 15}}),
              virtio::kBlkStatusIoErr);
    EXPECT_TRUE(disk->calls.empty());
}

TEST_F(VirtioBlockTest, DiscardAndWriteZeroesNeedTheirFeature) {
    start(false, "s",
          kAllFeatures & ~(uint64_t{1} << virtio::kBlkFeatureDiscard) &
              ~(uint64_t{1} << virtio::kBlkFeatureWriteZeroes));
    EXPECT_EQ(segments(virtio::kBlkTypeDiscard, {{0, 8, 0}}), virtio::kBlkStatusUnsupp);
    EXPECT_EQ(segments(virtio::kBlkTypeWriteZeroes, {{0, 8, 0}}), virtio::kBlkStatusUnsupp);
    EXPECT_TRUE(disk->calls.empty());
}

TEST_F(VirtioBlockTest, UnknownTypesAreUnsupported) {
    start();
    for (uint32_t type : {2u, 3u, 5u, 10u, 14u, 15u, 16u, 0x80000000u, 0xffffffffu}) {
        EXPECT_EQ(request(type, 0, {{kData, 512, true}}), virtio::kBlkStatusUnsupp) << type;
    }
}

TEST_F(VirtioBlockTest, MalformedChainsNeverReachTheImage) {
    start();
    std::vector<uint8_t> before = disk->bytes;
    // A header shorter than 16 bytes: IOERR.
    virtio::BlkRequestHeader h{virtio::kBlkTypeOut, 0, 0};
    ASSERT_TRUE(memory.write_object(kHeaders, h));
    EXPECT_EQ(submit({{kHeaders, 12}, status_buf(60)}), 1u);
    EXPECT_EQ(status(60), virtio::kBlkStatusIoErr);
    EXPECT_EQ(submit({status_buf(61)}), 1u);  // no readable part at all
    EXPECT_EQ(status(61), virtio::kBlkStatusIoErr);
    // No writable byte for the status: returned with nothing written.
    fill_guest(kData, 512, 0x42);
    EXPECT_EQ(submit({{kHeaders, 16}, {kData, 512}}), 0u);
    // Zero-length buffers are skipped when looking for the status.
    ASSERT_TRUE(memory.write_object(kHeaders + 0x100, virtio::BlkRequestHeader{8, 0, 0}));
    EXPECT_EQ(submit({{kHeaders + 0x100, 16},
                      {kData + 0x2000, 20, true},
                      status_buf(62),
                      {kData + 0x3000, 0, true}}),
              21u);
    EXPECT_EQ(status(62), virtio::kBlkStatusOk);
    EXPECT_EQ(disk->bytes, before);
}

TEST_F(VirtioBlockTest, CountsWhatTheGuestReadWroteAndFlushed) {
    start();
    ASSERT_EQ(request(virtio::kBlkTypeOut, 0, {{kData, 1024}}), virtio::kBlkStatusOk);
    ASSERT_EQ(request(virtio::kBlkTypeIn, 4, {{kData, 512, true}}), virtio::kBlkStatusOk);
    ASSERT_EQ(request(virtio::kBlkTypeIn, 8, {{kData, 2048, true}}), virtio::kBlkStatusOk);
    ASSERT_EQ(request(virtio::kBlkTypeFlush, 0), virtio::kBlkStatusOk);
    disk->failing = true;
    ASSERT_EQ(request(virtio::kBlkTypeIn, 0, {{kData, 512, true}}), virtio::kBlkStatusIoErr);
    const VirtioBlock::Counters& counters = block->counters();
    EXPECT_EQ(counters.write_ops, 1u);
    EXPECT_EQ(counters.write_bytes, 1024u);
    EXPECT_EQ(counters.read_ops, 2u);
    EXPECT_EQ(counters.read_bytes, 2560u);
    EXPECT_EQ(counters.flush_ops, 1u);
    EXPECT_EQ(counters.failed_ops, 1u);
}

TEST_F(VirtioBlockTest, HostIoErrorsBecomeIoErrStatusAndTheDeviceGoesOn) {
    start();
    disk->failing = true;
    EXPECT_EQ(request(virtio::kBlkTypeIn, 0, {{kData, 512, true}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(request(virtio::kBlkTypeOut, 0, {{kData, 512}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(request(virtio::kBlkTypeFlush, 0), virtio::kBlkStatusIoErr);
    EXPECT_EQ(segments(virtio::kBlkTypeDiscard, {{0, 8, 0}}), virtio::kBlkStatusIoErr);
    EXPECT_EQ(segments(virtio::kBlkTypeWriteZeroes, {{0, 8, 0}}), virtio::kBlkStatusIoErr);
    disk->failing = false;
    EXPECT_EQ(request(virtio::kBlkTypeIn, 0, {{kData, 512, true}}), virtio::kBlkStatusOk);
    EXPECT_TRUE(queues[0].ready());
}

TEST_F(VirtioBlockTest, OneInterruptPerBatchAndNoneWhenSuppressed) {
    start();
    for (unsigned i = 0; i < 3; ++i) {
        driver.make_available(driver.add_chain(
            {header(i, virtio::kBlkTypeIn, i), {kData + 0x1000 * i, 512, true}, status_buf(i)}));
    }
    block->process_queue(0);
    EXPECT_EQ(driver.used_idx(), 3);
    EXPECT_EQ(interrupt.used, (std::vector<uint16_t>{0}));
    for (unsigned i = 0; i < 3; ++i) {
        EXPECT_EQ(status(i), virtio::kBlkStatusOk);
        EXPECT_EQ(guest_bytes(kData + 0x1000 * i, 512), disk_bytes(512 * i, 512));
    }
    driver.set_avail_flags(virtio::kAvailFlagNoInterrupt);
    EXPECT_EQ(request(virtio::kBlkTypeFlush, 0), virtio::kBlkStatusOk);
    EXPECT_EQ(interrupt.used.size(), 1u);
    block->process_queue(1);  // no such queue: ignored
    block->reset();
    block->process_queue(0);  // after reset: ignored
}

TEST_F(VirtioBlockTest, RequestsCompleteInAnyOrderWithOneInterruptPerBatch) {
    start();
    disk->holding = true;
    std::vector<uint16_t> heads;
    for (unsigned i = 0; i < 3; ++i) {  // sectors apart, so that none merges
        heads.push_back(driver.add_chain({header(i, virtio::kBlkTypeIn, 4 * i),
                                          {kData + 0x1000 * i, 512, true},
                                          status_buf(i)}));
        driver.make_available(heads.back());
    }
    block->process_queue(0);
    // All three went to the disk at once; none is done.
    EXPECT_EQ(disk->order, (std::vector<std::string>{"read@0", "read@4", "read@8"}));
    EXPECT_EQ(driver.used_idx(), 0);
    EXPECT_TRUE(interrupt.used.empty());

    disk->release(2);
    block->complete_requests();
    ASSERT_EQ(driver.used_idx(), 1);
    EXPECT_EQ(driver.used(0).id, heads[2]);
    EXPECT_EQ(driver.used(0).len, 513u);
    EXPECT_EQ(status(2), virtio::kBlkStatusOk);
    EXPECT_EQ(status(0), 0xee) << "request 0 is still in flight";
    EXPECT_EQ(interrupt.used.size(), 1u);

    disk->release(0);
    disk->release(1);
    block->complete_requests();
    ASSERT_EQ(driver.used_idx(), 3);
    EXPECT_EQ(driver.used(1).id, heads[0]);
    EXPECT_EQ(driver.used(2).id, heads[1]);
    EXPECT_EQ(interrupt.used.size(), 2u) << "one interrupt for the batch of two";
    for (unsigned i = 0; i < 3; ++i) {
        EXPECT_EQ(status(i), virtio::kBlkStatusOk);
        EXPECT_EQ(guest_bytes(kData + 0x1000 * i, 512), disk_bytes(512 * i, 512));
    }
    block->complete_requests();  // nothing new: no interrupt
    EXPECT_EQ(interrupt.used.size(), 2u);
}

TEST(VirtioBlock, OffersMqWithSeveralQueues) {
    auto disk = std::make_shared<MemoryDisk>(kDiskSize, false);
    VirtioBlock block(disk, "s", "disk", 4);
    EXPECT_EQ(block.queue_count(), 4);
    EXPECT_TRUE(has(block.device_features(), virtio::kBlkFeatureMq));
    EXPECT_EQ(read_config(block).num_queues, 4);
    EXPECT_THROW(VirtioBlock(disk, "s", "disk", 0), Error);
    EXPECT_THROW(VirtioBlock(disk, "s", "disk", VirtioBlock::kMaxQueues + 1), Error);
}

// With MQ each request returns to the queue it came from, and each queue
// gets its own interrupt: Linux sends from each vCPU on its own queue, whose
// interrupt goes back to that vCPU.
TEST_F(VirtioBlockTest, EachQueueGetsBackItsOwnChainsAndInterrupts) {
    disk = std::make_shared<MemoryDisk>(kDiskSize, false);
    block = std::make_unique<VirtioBlock>(disk, "s", "disk", 2);
    uint64_t features = kAllFeatures | uint64_t{1} << virtio::kBlkFeatureMq;
    DriverQueue second{memory, 64, kRings + 0x4000};
    queues.emplace_back(memory, driver.config(), features);
    queues.emplace_back(memory, second.config(), features);
    block->activate(VirtioActivation{memory, features, queues, interrupt});
    disk->holding = true;

    uint16_t on_second =
        second.add_chain({header(0, virtio::kBlkTypeIn, 8), {kData, 512, true}, status_buf(0)});
    second.make_available(on_second);
    uint16_t on_first = driver.add_chain(
        {header(1, virtio::kBlkTypeIn, 0), {kData + 0x1000, 512, true}, status_buf(1)});
    driver.make_available(on_first);
    block->process_queue(1);
    block->process_queue(0);
    EXPECT_EQ(disk->order, (std::vector<std::string>{"read@8", "read@0"}));

    disk->release(0);
    block->complete_requests();
    ASSERT_EQ(second.used_idx(), 1);
    EXPECT_EQ(second.used(0).id, on_second);
    EXPECT_EQ(driver.used_idx(), 0);
    EXPECT_EQ(interrupt.used, (std::vector<uint16_t>{1}));
    EXPECT_EQ(guest_bytes(kData, 512), disk_bytes(8 * 512, 512));

    disk->release(1);
    block->complete_requests();
    ASSERT_EQ(driver.used_idx(), 1);
    EXPECT_EQ(driver.used(0).id, on_first);
    EXPECT_EQ(interrupt.used, (std::vector<uint16_t>{1, 0}));

    // Requests of both queues completing in one batch: one interrupt each.
    for (unsigned i = 2; i < 4; ++i) {
        DriverQueue& queue = i == 2 ? driver : second;
        queue.make_available(queue.add_chain({header(i, virtio::kBlkTypeOut, 16 * i),
                                              {kData + 0x1000 * i, 512, false},
                                              status_buf(i)}));
    }
    block->process_queue(0);
    block->process_queue(1);
    disk->release(2);
    disk->release(3);
    block->complete_requests();
    EXPECT_EQ(driver.used_idx(), 2);
    EXPECT_EQ(second.used_idx(), 2);
    EXPECT_EQ(status(2), virtio::kBlkStatusOk);
    EXPECT_EQ(status(3), virtio::kBlkStatusOk);
    EXPECT_EQ(interrupt.used, (std::vector<uint16_t>{1, 0, 0, 1}));
    block->process_queue(2);  // no such queue: ignored
}

TEST_F(VirtioBlockTest, WriteThroughFlushesEachWriteBeforeItCompletes) {
    start(false, "s", kAllFeatures & ~(uint64_t{1} << virtio::kBlkFeatureFlush));
    disk->holding = true;
    fill_guest(kData, 512, 0x3c);
    driver.make_available(
        driver.add_chain({header(0, virtio::kBlkTypeOut, 5), {kData, 512}, status_buf(0)}));
    block->process_queue(0);
    disk->release(0);  // the write is done: its flush follows, the chain waits for it
    block->complete_requests();
    EXPECT_EQ(disk->order, (std::vector<std::string>{"write@5", "flush"}));
    EXPECT_EQ(driver.used_idx(), 0);
    disk->release(1);
    block->complete_requests();
    EXPECT_EQ(driver.used_idx(), 1);
    EXPECT_EQ(status(0), virtio::kBlkStatusOk);
}

TEST_F(VirtioBlockTest, NeighbouringRequestsOfOneNotificationReachTheImageAsOne) {
    start();
    disk->holding = true;
    // Writes to sectors 12, 10, 11 (out of order) and 20; reads of 30 and 31.
    const std::vector<std::pair<uint32_t, uint64_t>> requests = {
        {virtio::kBlkTypeOut, 12}, {virtio::kBlkTypeOut, 10}, {virtio::kBlkTypeIn, 31},
        {virtio::kBlkTypeOut, 11}, {virtio::kBlkTypeOut, 20}, {virtio::kBlkTypeIn, 30}};
    for (unsigned i = 0; i < requests.size(); ++i) {
        auto [type, sector] = requests[i];
        fill_guest(kData + 0x1000 * i, 512, static_cast<uint8_t>(0x40 + i));
        driver.make_available(
            driver.add_chain({header(i, type, sector),
                              {kData + 0x1000 * i, 512, type == virtio::kBlkTypeIn},
                              status_buf(i)}));
    }
    block->process_queue(0);
    EXPECT_EQ(disk->order, (std::vector<std::string>{"read@30", "write@10", "write@20"}));
    for (size_t i = 0; i < disk->held.size(); ++i) {
        disk->release(i);
    }
    block->complete_requests();
    ASSERT_EQ(driver.used_idx(), requests.size());
    for (unsigned i = 0; i < requests.size(); ++i) {
        EXPECT_EQ(status(i), virtio::kBlkStatusOk) << "request " << i;
    }
    // Each write's bytes landed at its own sector; each read got its own.
    EXPECT_EQ(disk_bytes(10 * 512, 512), std::vector<uint8_t>(512, 0x41));
    EXPECT_EQ(disk_bytes(11 * 512, 512), std::vector<uint8_t>(512, 0x43));
    EXPECT_EQ(disk_bytes(12 * 512, 512), std::vector<uint8_t>(512, 0x40));
    EXPECT_EQ(guest_bytes(kData + 0x2000, 512), disk_bytes(31 * 512, 512));
    EXPECT_EQ(guest_bytes(kData + 0x5000, 512), disk_bytes(30 * 512, 512));
}

TEST_F(VirtioBlockTest, AFlushIsSentAfterTheWritesBeforeItAndAMergedFailureFailsEachPart) {
    start();
    disk->holding = true;
    driver.make_available(
        driver.add_chain({header(0, virtio::kBlkTypeOut, 1), {kData, 512}, status_buf(0)}));
    driver.make_available(driver.add_chain({header(1, virtio::kBlkTypeFlush, 0), status_buf(1)}));
    driver.make_available(driver.add_chain(
        {header(2, virtio::kBlkTypeOut, 2), {kData + 0x1000, 512}, status_buf(2)}));
    driver.make_available(driver.add_chain(
        {header(3, virtio::kBlkTypeOut, 3), {kData + 0x2000, 512}, status_buf(3)}));
    disk->failing = true;
    block->process_queue(0);
    disk->failing = false;
    EXPECT_EQ(disk->order, (std::vector<std::string>{"write@1", "flush", "write@2"}));
    for (size_t i = 0; i < disk->held.size(); ++i) {
        disk->release(i);
    }
    block->complete_requests();
    EXPECT_EQ(driver.used_idx(), 4);
    for (unsigned i = 0; i < 4; ++i) {
        EXPECT_EQ(status(i), virtio::kBlkStatusIoErr) << "request " << i;
    }
}

TEST_F(VirtioBlockTest, AFailedRequestAmongOthersFailsAlone) {
    start();
    disk->holding = true;
    for (unsigned i = 0; i < 2; ++i) {
        driver.make_available(driver.add_chain(
            {header(i, virtio::kBlkTypeIn, i), {kData + 0x1000 * i, 512, true}, status_buf(i)}));
        disk->failing = i == 1;
        block->process_queue(0);
    }
    disk->release(1);
    disk->release(0);
    block->complete_requests();
    EXPECT_EQ(driver.used_idx(), 2);
    EXPECT_EQ(status(0), virtio::kBlkStatusOk);
    EXPECT_EQ(status(1), virtio::kBlkStatusIoErr);
    // Released first, the failed read came back first, with no data.
    EXPECT_EQ(driver.used(0).len, 1u);
    EXPECT_EQ(driver.used(1).len, 513u);
}

// Over real images, as the VMM opens them: a ring's worth of reads and writes
// in flight at once, which io_uring completes in whatever order the host's
// disk finishes them.
class VirtioBlockOnImage : public VirtioBlockTest, public ::testing::WithParamInterface<bool> {
protected:
    static constexpr unsigned kBatch = 20;  // 3 descriptors each, in a 64-entry table
    static constexpr uint64_t kRequestBytes = 8 * KiB;

    void SetUp() override {
        // A raw base with a pattern; with qcow2, an overlay on it whose
        // clusters (4 KiB) are allocated by these writes, some partially.
        auto base = scratch / "base.raw";
        CreateOptions raw;
        raw.format = ImageFormat::raw;
        raw.size = kDiskSize;
        create_image(base, raw);
        model = testing::pattern(7, 0, kDiskSize);
        open_image(base)->write(0, model);
        auto top = base;
        if (GetParam()) {
            top = scratch / "top.qcow2";
            create_image(top,
                         testing::qcow2_options(kDiskSize, 4096, "base.raw", ImageFormat::raw));
        }
        image = open_image(top);
        start_on(image);
    }

    // Offers a batch of requests, one per sector, and waits for all of them.
    void run_batch(uint32_t type, const std::vector<uint64_t>& sectors) {
        uint16_t before = driver.used_idx();
        for (unsigned i = 0; i < sectors.size(); ++i) {
            uint64_t data = kData + i * kRequestBytes;
            bool device_writes = type == virtio::kBlkTypeIn;
            driver.make_available(
                driver.add_chain({header(i, type, sectors[i]),
                                  {data, static_cast<uint32_t>(kRequestBytes), device_writes},
                                  status_buf(i)}));
        }
        block->process_queue(0);
        block->drain();
        ASSERT_EQ(driver.used_idx(), static_cast<uint16_t>(before + sectors.size()));
        for (unsigned i = 0; i < sectors.size(); ++i) {
            EXPECT_EQ(status(i), virtio::kBlkStatusOk) << "request " << i;
        }
    }
    // Sectors spread over the disk, 1.5 KiB apart from 4 KiB boundaries.
    static std::vector<uint64_t> spread(uint64_t first) {
        std::vector<uint64_t> sectors;
        for (unsigned i = 0; i < kBatch; ++i) {
            sectors.push_back(first + i * (kDiskSize / 512 / kBatch) + 3);
        }
        return sectors;
    }
    void write_batch(const std::vector<uint64_t>& sectors, uint64_t seed) {
        for (unsigned i = 0; i < sectors.size(); ++i) {
            auto bytes = testing::pattern(seed + i, 0, kRequestBytes);
            ASSERT_TRUE(memory.write(kData + i * kRequestBytes, bytes.data(), bytes.size()));
            std::copy(bytes.begin(), bytes.end(), model.begin() + sectors[i] * 512);
        }
        run_batch(virtio::kBlkTypeOut, sectors);
    }

    testing::ScratchDir scratch;
    std::shared_ptr<DiskImage> image;
    std::vector<uint8_t> model;  // what the disk must hold
};

TEST_P(VirtioBlockOnImage, ManyRequestsInFlightReadBackWhatWasWritten) {
    write_batch(spread(0), 100);
    // Reads of written, partly written and untouched (backing) ranges.
    for (uint64_t first : {0u, 8u, 20u}) {
        std::vector<uint64_t> sectors = spread(first);
        run_batch(virtio::kBlkTypeIn, sectors);
        for (unsigned i = 0; i < sectors.size(); ++i) {
            auto expected = std::vector<uint8_t>(model.begin() + sectors[i] * 512,
                                                 model.begin() + sectors[i] * 512 + kRequestBytes);
            EXPECT_EQ(guest_bytes(kData + i * kRequestBytes, kRequestBytes), expected)
                << "read at sector " << sectors[i];
        }
    }
    // Overwrites in place, then the whole disk through the image's own read.
    write_batch(spread(1), 200);
    std::vector<uint8_t> contents(kDiskSize);
    image->read(0, contents);
    EXPECT_TRUE(contents == model);
}

TEST_P(VirtioBlockOnImage, ResetWaitsForTheRequestsInFlight) {
    std::vector<uint64_t> sectors = spread(0);
    for (unsigned i = 0; i < sectors.size(); ++i) {
        auto bytes = testing::pattern(300 + i, 0, kRequestBytes);
        ASSERT_TRUE(memory.write(kData + i * kRequestBytes, bytes.data(), bytes.size()));
        std::copy(bytes.begin(), bytes.end(), model.begin() + sectors[i] * 512);
        driver.make_available(
            driver.add_chain({header(i, virtio::kBlkTypeOut, sectors[i]),
                              {kData + i * kRequestBytes, static_cast<uint32_t>(kRequestBytes)},
                              status_buf(i)}));
    }
    block->process_queue(0);
    block->reset();  // the driver resets the device with all of them in flight
    std::vector<uint8_t> contents(kDiskSize);
    image->read(0, contents);
    EXPECT_TRUE(contents == model) << "every write in flight finished before reset returned";
}

INSTANTIATE_TEST_SUITE_P(RawAndQcow2, VirtioBlockOnImage, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& test) {
                             return test.param ? "Qcow2" : "Raw";
                         });

// Through the PCI transport: the device is found by its ID, its configuration
// is in the DEVICE_CFG structure, and requests are served on the disk's own
// worker thread, which signals the queue's MSI-X vector.
TEST(VirtioBlockPci, ServesRequestsOnItsOwnThreadAndSignalsMsix) {
    GuestMemory memory = GuestMemory::create({{0, 16 * MiB}});
    testing::FakeMsiController msi;
    auto disk = std::make_shared<MemoryDisk>(kDiskSize, false);
    VirtioPciDevice device(std::make_unique<VirtioBlock>(disk, "pci-disk"), memory, msi, nullptr,
                           "virtio-blk3");
    auto cfg8 = [&](uint32_t offset) {
        uint8_t value = 0;
        device.config_read(offset, {&value, 1});
        return value;
    };
    uint16_t id = 0;
    device.config_read(2, {reinterpret_cast<uint8_t*>(&id), 2});
    EXPECT_EQ(id, 0x1042);

    auto bar_write = [&](uint64_t offset, auto value) {
        device.bar_write(0, offset, {reinterpret_cast<const uint8_t*>(&value), sizeof(value)});
    };
    uint64_t capacity = 0;
    device.bar_read(0, VirtioPciDevice::kDeviceCfgOffset,
                    {reinterpret_cast<uint8_t*>(&capacity), 8});
    EXPECT_EQ(capacity, kSectors);

    // MSI-X on, table entry 1 for queue 0.
    uint8_t cap = cfg8(pci::kCapabilitiesPointer);
    while (cap != 0 && cfg8(cap) != pci::kCapabilityMsix) {
        cap = cfg8(cap + 1);
    }
    ASSERT_NE(cap, 0);
    uint16_t control = Msix::kControlEnable;
    device.config_write(cap + 2, {reinterpret_cast<const uint8_t*>(&control), 2});
    bar_write(VirtioPciDevice::kMsixTableOffset + 16 + 0, uint32_t{0xfee0'0000});
    bar_write(VirtioPciDevice::kMsixTableOffset + 16 + 8, uint32_t{0x41});
    bar_write(VirtioPciDevice::kMsixTableOffset + 16 + 12, uint32_t{0});

    using Cfg = virtio::PciCommonCfg;
    auto status = [&](uint8_t value) { bar_write(offsetof(Cfg, device_status), value); };
    status(virtio::kStatusAcknowledge | virtio::kStatusDriver);
    uint64_t features = uint64_t{1} << virtio::kFeatureVersion1 | uint64_t{1}
                                                                      << virtio::kBlkFeatureFlush;
    for (uint32_t select = 0; select < 2; ++select) {
        bar_write(offsetof(Cfg, driver_feature_select), select);
        bar_write(offsetof(Cfg, driver_feature), static_cast<uint32_t>(features >> (32 * select)));
    }
    status(virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
    DriverQueue queue(memory, 16, kRings);
    bar_write(offsetof(Cfg, queue_select), uint16_t{0});
    bar_write(offsetof(Cfg, queue_size), uint16_t{16});
    bar_write(offsetof(Cfg, queue_msix_vector), uint16_t{1});
    bar_write(offsetof(Cfg, queue_desc), queue.config().desc_table);
    bar_write(offsetof(Cfg, queue_driver), queue.config().avail_ring);
    bar_write(offsetof(Cfg, queue_device), queue.config().used_ring);
    bar_write(offsetof(Cfg, queue_enable), uint16_t{1});
    status(virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk |
           virtio::kStatusDriverOk);

    ASSERT_TRUE(memory.write_object(kHeaders, virtio::BlkRequestHeader{virtio::kBlkTypeIn, 0, 4}));
    queue.make_available(
        queue.add_chain({{kHeaders, 16}, {kData, 1024, true}, {kStatuses, 1, true}}));
    bar_write(VirtioPciDevice::kNotifyOffset, uint16_t{0});
    ASSERT_TRUE(msi.vector(1).wait_for_triggers(1));
    ASSERT_EQ(queue.used_idx(), 1);
    EXPECT_EQ(queue.used(0).len, 1025u);
    EXPECT_EQ(memory.read_object<uint8_t>(kStatuses), virtio::kBlkStatusOk);
    std::vector<uint8_t> read(1024);
    ASSERT_TRUE(memory.read(kData, read.data(), read.size()));
    EXPECT_TRUE(std::equal(read.begin(), read.end(), disk->bytes.begin() + 4 * 512));
    EXPECT_NE(disk->io_thread(), std::this_thread::get_id());
    EXPECT_EQ(disk->io_thread_name(), "virtio-blk3");
    status(0);  // reset joins the worker
}

}  // namespace
}  // namespace vireo
