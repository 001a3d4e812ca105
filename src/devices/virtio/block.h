#pragma once

#include <array>
#include <atomic>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/rate_limited_log.h"
#include "block/disk_image.h"
#include "block/io_context.h"
#include "devices/virtio/virtio_device.h"

// The block device's part of the virtio 1.x specification (5.2), little endian
// like the rest of virtio_spec.h.
namespace vireo::virtio {

// Feature bits (5.2.3).
inline constexpr int kBlkFeatureSizeMax = 1;
inline constexpr int kBlkFeatureSegMax = 2;
inline constexpr int kBlkFeatureRo = 5;
inline constexpr int kBlkFeatureBlkSize = 6;
inline constexpr int kBlkFeatureFlush = 9;
inline constexpr int kBlkFeatureMq = 12;
inline constexpr int kBlkFeatureDiscard = 13;
inline constexpr int kBlkFeatureWriteZeroes = 14;

// Request types (5.2.6).
inline constexpr uint32_t kBlkTypeIn = 0;
inline constexpr uint32_t kBlkTypeOut = 1;
inline constexpr uint32_t kBlkTypeFlush = 4;
inline constexpr uint32_t kBlkTypeGetId = 8;
inline constexpr uint32_t kBlkTypeDiscard = 11;
inline constexpr uint32_t kBlkTypeWriteZeroes = 13;

// The status byte, the last device-writable byte of every request.
inline constexpr uint8_t kBlkStatusOk = 0;
inline constexpr uint8_t kBlkStatusIoErr = 1;
inline constexpr uint8_t kBlkStatusUnsupp = 2;

inline constexpr uint64_t kBlkSectorSize = 512;  // the protocol's unit, whatever blk_size says
inline constexpr size_t kBlkIdBytes = 20;        // GET_ID: NUL-padded, no NUL when 20 long
inline constexpr uint32_t kBlkFlagUnmap = 1;     // virtio_blk_discard_write_zeroes.flags

// struct virtio_blk_req up to data[]: the device-readable header.
struct BlkRequestHeader {
    uint32_t type;
    uint32_t reserved;  // ioprio in legacy drivers; ignored
    uint64_t sector;
};
static_assert(sizeof(BlkRequestHeader) == 16);
static_assert(offsetof(BlkRequestHeader, type) == 0 && offsetof(BlkRequestHeader, reserved) == 4 &&
              offsetof(BlkRequestHeader, sector) == 8);

// One segment of a DISCARD or WRITE_ZEROES request's data.
struct BlkDiscardWriteZeroes {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;  // bit 0 unmap, the rest reserved
};
static_assert(sizeof(BlkDiscardWriteZeroes) == 16);
static_assert(offsetof(BlkDiscardWriteZeroes, sector) == 0 &&
              offsetof(BlkDiscardWriteZeroes, num_sectors) == 8 &&
              offsetof(BlkDiscardWriteZeroes, flags) == 12);

// struct virtio_blk_config (virtio 1.2, 5.2.4). Fields of features not offered read 0.
struct BlkConfig {
    uint64_t capacity;  // in 512-byte sectors
    uint32_t size_max;
    uint32_t seg_max;
    uint16_t cylinders;  // geometry
    uint8_t heads;
    uint8_t sectors;
    uint32_t blk_size;
    uint8_t physical_block_exp;  // topology
    uint8_t alignment_offset;
    uint16_t min_io_size;
    uint32_t opt_io_size;
    uint8_t writeback;
    uint8_t unused0;
    uint16_t num_queues;
    uint32_t max_discard_sectors;
    uint32_t max_discard_seg;
    uint32_t discard_sector_alignment;
    uint32_t max_write_zeroes_sectors;
    uint32_t max_write_zeroes_seg;
    uint8_t write_zeroes_may_unmap;
    uint8_t unused1[3];
    uint32_t max_secure_erase_sectors;
    uint32_t max_secure_erase_seg;
    uint32_t secure_erase_sector_alignment;
    uint32_t zone_sectors;  // zoned characteristics
    uint32_t max_open_zones;
    uint32_t max_active_zones;
    uint32_t max_append_sectors;
    uint32_t write_granularity;
    uint8_t model;
    uint8_t unused2[3];
};
static_assert(sizeof(BlkConfig) == 96);
static_assert(offsetof(BlkConfig, size_max) == 8 && offsetof(BlkConfig, seg_max) == 12 &&
              offsetof(BlkConfig, cylinders) == 16 && offsetof(BlkConfig, heads) == 18 &&
              offsetof(BlkConfig, sectors) == 19 && offsetof(BlkConfig, blk_size) == 20 &&
              offsetof(BlkConfig, physical_block_exp) == 24 &&
              offsetof(BlkConfig, alignment_offset) == 25 &&
              offsetof(BlkConfig, min_io_size) == 26 && offsetof(BlkConfig, opt_io_size) == 28 &&
              offsetof(BlkConfig, writeback) == 32 && offsetof(BlkConfig, num_queues) == 34 &&
              offsetof(BlkConfig, max_discard_sectors) == 36 &&
              offsetof(BlkConfig, max_discard_seg) == 40 &&
              offsetof(BlkConfig, discard_sector_alignment) == 44 &&
              offsetof(BlkConfig, max_write_zeroes_sectors) == 48 &&
              offsetof(BlkConfig, max_write_zeroes_seg) == 52 &&
              offsetof(BlkConfig, write_zeroes_may_unmap) == 56 &&
              offsetof(BlkConfig, max_secure_erase_sectors) == 60 &&
              offsetof(BlkConfig, zone_sectors) == 72 && offsetof(BlkConfig, model) == 92);

}  // namespace vireo::virtio

namespace vireo {

// virtio-blk (virtio 1.x 5.2): one disk image behind one or more request
// queues (MQ: Linux gives each vCPU its own, so a request's interrupt comes
// back to the CPU that sent it, as QEMU's default of one per vCPU). The
// queues share the disk's worker thread and IoContext, as QEMU's share one
// AioContext. The transport runs process_queue() on that worker thread, the
// disk's I/O thread: each notification takes every available chain, submits
// their requests to the disk's IoContext in one batch (straight between the
// image and guest RAM: the buffers are guest memory; reads or writes of
// neighbouring sectors merged into one request) and returns. Requests
// complete in any order; the worker watches the context's eventfd and
// complete_requests() writes their status and returns their chains, with one
// used-buffer interrupt per queue per batch of completions (EVENT_IDX
// honoured both ways by the Virtqueue). A guest has at most its ring's size (256) requests
// in flight; the context holds back file operations beyond its depth. A
// discard or write-zeroes waits until every earlier request has completed (it
// may free clusters they use); reset() waits for every request.
//
// Offered: SEG_MAX, BLK_SIZE (512), FLUSH, MQ with more than one queue, and RO for a read-only
// image, DISCARD and WRITE_ZEROES for a writable one. A driver that does not take FLUSH gets
// write-through: every write is flushed before it completes. Every request is checked: a header of
// 16 readable bytes, a writable status byte at the very end, data a multiple of 512 bytes inside
// the capacity (overflow-safe), segments within the advertised limits. What the guest got wrong
// ends the request with VIRTIO_BLK_S_IOERR (bad range, write to a read-only disk) or
// VIRTIO_BLK_S_UNSUPP (unknown type, feature not negotiated, reserved flag);
// a failing host (IoError) with VIRTIO_BLK_S_IOERR. Neither throws. A chain
// without a writable byte cannot carry a status: it is returned unused, with
// a log line.
class VirtioBlock final : public VirtioDevice {
public:
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint16_t kMaxQueues = 16;
    // Data descriptors per request, leaving room for the header and the status.
    static constexpr uint32_t kSegMax = kQueueSize - 2;
    static constexpr uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB per segment
    static constexpr uint32_t kMaxDiscardSegments = 32;
    static constexpr uint32_t kMaxWriteZeroesSectors = 1u << 22;
    static constexpr uint32_t kMaxWriteZeroesSegments = 32;
    // A hint for the guest's discard granularity: 4 KiB, the usual host block.
    static constexpr uint32_t kDiscardAlignmentSectors = 8;

    // `serial` is what GET_ID returns: at most 20 printable ASCII characters.
    // `label` names the disk in log lines; `queues` is 1 to kMaxQueues.
    // Throws vireo::Error for a bad serial or queue count.
    VirtioBlock(std::shared_ptr<DiskImage> image, std::string serial,
                std::string label = "virtio-blk", uint16_t queues = 1);

    uint32_t device_type() const override;
    std::string_view name() const override { return "virtio-blk"; }
    uint64_t device_features() const override { return features_; }
    uint16_t queue_count() const override { return queue_count_; }
    uint16_t queue_max_size() const override { return kQueueSize; }
    uint32_t config_size() const override { return sizeof(config_); }
    void config_read(uint32_t offset, std::span<uint8_t> data) override;

    void activate(const VirtioActivation& activation) override;
    void process_queue(uint16_t queue) override;
    std::vector<DeviceWorker::Source> worker_sources() override;
    void reset() override;
    // The worker's handler for the context's eventfd: finishes the requests
    // that are done.
    void complete_requests();
    // Waits until no request is in flight (finishing each).
    void drain();

    // Checks `serial` as GET_ID can carry it; returns why not, or nullopt.
    static std::optional<std::string> serial_problem(std::string_view serial);

    // What the guest's requests did, counted as they complete, for the
    // host's metrics (read from any thread).
    struct Counters {
        std::atomic<uint64_t> read_ops = 0;
        std::atomic<uint64_t> read_bytes = 0;
        std::atomic<uint64_t> write_ops = 0;
        std::atomic<uint64_t> write_bytes = 0;
        std::atomic<uint64_t> flush_ops = 0;
        std::atomic<uint64_t> failed_ops = 0;  // completed with an error status
    };
    const Counters& counters() const { return counters_; }

private:
    struct Result {
        uint8_t status;
        uint32_t written;  // data bytes written into the writable buffers, before the status
    };

    // A request handed to the image, until it completes.
    struct InFlight {
        uint16_t queue = 0;
        uint16_t head = 0;
        uint64_t status_address = 0;
        uint32_t type = 0;
        uint64_t sector = 0;
        uint64_t bytes = 0;       // of data
        uint32_t read_bytes = 0;  // written into the guest's buffers on success
        std::vector<iovec> buffers;
    };
    // Reads and writes of one notification that touch neighbouring sectors
    // go to the image as one request (as QEMU merges them), up to these.
    static constexpr uint64_t kMaxMergedBytes = 1 << 20;
    static constexpr size_t kMaxMergedBuffers = 1024;  // IOV_MAX

    // Starts one chain's request, or finishes it at once (refused, GET_ID).
    void start(uint16_t queue, const DescriptorChain& chain);
    // nullopt: the request went to the image and finishes later.
    std::optional<Result> execute(const InFlight& chain, const virtio::BlkRequestHeader& header,
                                  std::span<const GuestBuffer> in,
                                  std::span<const GuestBuffer> out);
    std::optional<Result> read_or_write(const InFlight& chain,
                                        const virtio::BlkRequestHeader& header,
                                        std::span<const GuestBuffer> data);
    std::optional<Result> flush(const InFlight& chain);
    void send(std::unique_ptr<InFlight> request, const DiskRequest& disk_request);
    // Sends the reads and writes batched since the last call, merged.
    void send_batch();
    void send_merged(std::vector<std::unique_ptr<InFlight>> parts);
    void finished(InFlight& request, const IoError* failure);
    // One used-buffer interrupt for each queue with chains returned since its
    // last one, unless the driver suppressed it.
    void signal_used();
    // Writes the status and returns the chain to its queue; `used` counts the
    // status byte.
    void finish(const InFlight& chain, Result result);
    // A driver that did not take FLUSH counts on write-through.
    bool write_through() const;
    Result get_id(std::span<const GuestBuffer> out);
    Result discard_or_zero(uint32_t type, std::span<const GuestBuffer> in);
    // [sector, sector + bytes) lies inside the disk, overflow-safe.
    bool in_capacity(uint64_t sector, uint64_t bytes) const;
    bool negotiated(int feature) const;

    std::shared_ptr<DiskImage> image_;
    std::array<char, virtio::kBlkIdBytes> id_{};
    std::string label_;
    uint16_t queue_count_;
    Counters counters_;
    uint64_t capacity_;  // in sectors
    uint64_t features_;
    virtio::BlkConfig config_{};
    RateLimitedLog log_;
    std::optional<VirtioActivation> active_;
    IoContext io_{kQueueSize};
    std::bitset<kMaxQueues> used_pending_;  // queues with chains returned since their last check
    std::vector<std::unique_ptr<InFlight>> batch_;  // reads and writes not yet sent
};

}  // namespace vireo
