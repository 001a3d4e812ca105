#include "devices/virtio/block.h"

#include <sys/uio.h>
#include <algorithm>
#include <cstring>
#include <tuple>
#include <vector>

#include "devices/virtio/guest_buffers.h"
#include "devices/virtio/virtio_spec.h"

namespace vireo {

namespace {

using virtio::kBlkSectorSize;

const char* type_name(uint32_t type) {
    switch (type) {
        case virtio::kBlkTypeIn:
            return "read";
        case virtio::kBlkTypeOut:
            return "write";
        case virtio::kBlkTypeFlush:
            return "flush";
        case virtio::kBlkTypeDiscard:
            return "discard";
        case virtio::kBlkTypeWriteZeroes:
            return "write-zeroes";
        default:
            return "request";
    }
}

}  // namespace

std::optional<std::string> VirtioBlock::serial_problem(std::string_view serial) {
    if (serial.size() > virtio::kBlkIdBytes) {
        return fmt::format("'{}' is {} bytes long (at most {})", serial, serial.size(),
                           virtio::kBlkIdBytes);
    }
    for (char c : serial) {
        if (c < 0x20 || c > 0x7e) {
            return fmt::format("'{}' holds a character that is not printable ASCII", serial);
        }
    }
    return std::nullopt;
}

VirtioBlock::VirtioBlock(std::shared_ptr<DiskImage> image, std::string serial, std::string label,
                         uint16_t queues)
    : image_(std::move(image)),
      label_(std::move(label)),
      queue_count_(queues),
      capacity_(image_->size() / kBlkSectorSize),
      features_(uint64_t{1} << virtio::kBlkFeatureSegMax |
                uint64_t{1} << virtio::kBlkFeatureBlkSize |
                uint64_t{1} << virtio::kBlkFeatureFlush),
      log_(label_) {
    if (auto problem = serial_problem(serial)) {
        fail("{}: serial {}", label_, *problem);
    }
    std::copy(serial.begin(), serial.end(), id_.begin());
    if (queues < 1 || queues > kMaxQueues) {
        fail("{}: {} request queues; a disk has 1 to {}", label_, queues, kMaxQueues);
    }
    if (queues > 1) {
        features_ |= uint64_t{1} << virtio::kBlkFeatureMq;
        config_.num_queues = queues;
    }

    config_.capacity = capacity_;
    config_.seg_max = kSegMax;
    config_.blk_size = kBlkSectorSize;
    if (image_->read_only()) {
        features_ |= uint64_t{1} << virtio::kBlkFeatureRo;
    } else {
        features_ |= uint64_t{1} << virtio::kBlkFeatureDiscard |
                     uint64_t{1} << virtio::kBlkFeatureWriteZeroes;
        config_.max_discard_sectors = kMaxDiscardSectors;
        config_.max_discard_seg = kMaxDiscardSegments;
        config_.discard_sector_alignment = kDiscardAlignmentSectors;
        config_.max_write_zeroes_sectors = kMaxWriteZeroesSectors;
        config_.max_write_zeroes_seg = kMaxWriteZeroesSegments;
        config_.write_zeroes_may_unmap = 1;
    }
}

uint32_t VirtioBlock::device_type() const {
    return virtio::kDeviceBlock;
}

void VirtioBlock::config_read(uint32_t offset, std::span<uint8_t> data) {
    // The configuration never changes: no lock against the worker.
    std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config_) + offset, data.size());
}

void VirtioBlock::activate(const VirtioActivation& activation) {
    active_.emplace(activation);
}

void VirtioBlock::reset() {
    // The driver forgot its queue: requests in flight finish without
    // touching it (the kernel is done with guest RAM when drain() returns).
    active_.reset();
    io_.drain();
    used_pending_.reset();
}

bool VirtioBlock::negotiated(int feature) const {
    return (active_->features >> feature) & 1;
}

bool VirtioBlock::write_through() const {
    return !negotiated(virtio::kBlkFeatureFlush);
}

std::vector<DeviceWorker::Source> VirtioBlock::worker_sources() {
    return {{io_.event_fd(), [this] { complete_requests(); }}};
}

void VirtioBlock::process_queue(uint16_t queue) {
    if (!active_ || queue >= queue_count_) {
        return;
    }
    while (std::optional<DescriptorChain> chain = active_->queues[queue].pop()) {
        start(queue, *chain);
    }
    send_batch();
    io_.submit();
    // Requests finished at once (refused, GET_ID) share this batch's interrupt.
    complete_requests();
}

void VirtioBlock::complete_requests() {
    io_.process_completions();
    io_.submit();  // what the completions started (write-through flushes)
    signal_used();
}

void VirtioBlock::drain() {
    io_.drain();
    signal_used();
}

void VirtioBlock::signal_used() {
    if (!active_ || used_pending_.none()) {
        return;
    }
    for (uint16_t queue = 0; queue < queue_count_; ++queue) {
        if (used_pending_[queue] && active_->queues[queue].needs_interrupt()) {
            active_->interrupt.signal_used(queue);
        }
    }
    used_pending_.reset();
}

void VirtioBlock::finish(const InFlight& chain, Result result) {
    if (result.status != virtio::kBlkStatusOk) {
        counters_.failed_ops.fetch_add(1, std::memory_order_relaxed);
    } else if (chain.type == virtio::kBlkTypeIn) {
        counters_.read_ops.fetch_add(1, std::memory_order_relaxed);
        counters_.read_bytes.fetch_add(chain.bytes, std::memory_order_relaxed);
    } else if (chain.type == virtio::kBlkTypeOut) {
        counters_.write_ops.fetch_add(1, std::memory_order_relaxed);
        counters_.write_bytes.fetch_add(chain.bytes, std::memory_order_relaxed);
    } else if (chain.type == virtio::kBlkTypeFlush) {
        counters_.flush_ops.fetch_add(1, std::memory_order_relaxed);
    }
    // The chain was validated: the status byte is guest RAM.
    active_->memory.write_object(chain.status_address, result.status);
    active_->queues[chain.queue].push(chain.head, result.written + 1);
    used_pending_.set(chain.queue);
}

void VirtioBlock::start(uint16_t queue, const DescriptorChain& descriptors) {
    const GuestMemory& memory = active_->memory;
    uint64_t writable = total_length(descriptors.writable);
    if (writable == 0) {
        log_.warn("chain {} has no device-writable byte for the status; returned unused",
                  descriptors.head);
        active_->queues[queue].push(descriptors.head, 0);
        used_pending_.set(queue);
        return;
    }
    // The status is the last writable byte; the data of reads comes before it.
    InFlight chain;
    chain.queue = queue;
    chain.head = descriptors.head;
    chain.status_address = slice(descriptors.writable, writable - 1, 1)[0].address;
    std::vector<GuestBuffer> out = slice(descriptors.writable, 0, writable - 1);

    virtio::BlkRequestHeader header{};
    uint64_t readable = total_length(descriptors.readable);
    if (readable < sizeof(header) ||
        !gather(memory, descriptors.readable,
                std::span(reinterpret_cast<uint8_t*>(&header), sizeof(header)))) {
        log_.debug("chain {}: {} readable bytes, a request header needs {}", chain.head, readable,
                   sizeof(header));
        finish(chain, {virtio::kBlkStatusIoErr, 0});
        return;
    }
    std::vector<GuestBuffer> in =
        slice(descriptors.readable, sizeof(header), readable - sizeof(header));
    if (std::optional<Result> result = execute(chain, header, in, out)) {
        finish(chain, *result);
    }
}

std::optional<VirtioBlock::Result> VirtioBlock::execute(const InFlight& chain,
                                                        const virtio::BlkRequestHeader& header,
                                                        std::span<const GuestBuffer> in,
                                                        std::span<const GuestBuffer> out) {
    try {
        switch (header.type) {
            case virtio::kBlkTypeIn:
                return read_or_write(chain, header, out);
            case virtio::kBlkTypeOut:
                return read_or_write(chain, header, in);
            case virtio::kBlkTypeFlush:
                return flush(chain);
            case virtio::kBlkTypeGetId:
                return get_id(out);
            case virtio::kBlkTypeDiscard:
            case virtio::kBlkTypeWriteZeroes:
                return discard_or_zero(header.type, in);
            default:
                log_.debug("request type {} is not supported", header.type);
                return Result{virtio::kBlkStatusUnsupp, 0};
        }
    } catch (const Error& error) {
        // IoError from the image (EIO, ENOSPC...): the guest sees a failed
        // request, the VM goes on.
        log_.warn("{} at sector {} failed: {}", type_name(header.type), header.sector,
                  error.what());
        return Result{virtio::kBlkStatusIoErr, 0};
    }
}

bool VirtioBlock::in_capacity(uint64_t sector, uint64_t bytes) const {
    return sector <= capacity_ && bytes <= (capacity_ - sector) * kBlkSectorSize;
}

std::optional<VirtioBlock::Result> VirtioBlock::read_or_write(
    const InFlight& chain, const virtio::BlkRequestHeader& header,
    std::span<const GuestBuffer> data) {
    bool write = header.type == virtio::kBlkTypeOut;
    uint64_t length = total_length(data);
    if (write && image_->read_only()) {
        log_.debug("write at sector {} refused: the disk is read-only", header.sector);
        return Result{virtio::kBlkStatusIoErr, 0};
    }
    if (length % kBlkSectorSize != 0 || !in_capacity(header.sector, length)) {
        log_.debug("{} of {} bytes at sector {} refused (capacity {} sectors)",
                   type_name(header.type), length, header.sector, capacity_);
        return Result{virtio::kBlkStatusIoErr, 0};
    }
    auto request = std::make_unique<InFlight>(chain);
    request->type = header.type;
    request->sector = header.sector;
    request->bytes = length;
    request->read_bytes = write ? 0 : static_cast<uint32_t>(length);
    request->buffers.reserve(data.size());
    for (const GuestBuffer& buffer : data) {
        auto bytes = active_->memory.span(buffer.address, buffer.length);
        if (!bytes) {
            return Result{virtio::kBlkStatusIoErr, 0};  // cannot happen: the chain was validated
        }
        request->buffers.push_back({bytes->data(), bytes->size()});
    }
    batch_.push_back(std::move(request));
    return std::nullopt;
}

// In sector order, runs of the same kind on neighbouring sectors become one
// request: a guest writing a file at depth 32 sends 32 neighbours at once.
void VirtioBlock::send_batch() {
    std::stable_sort(batch_.begin(), batch_.end(), [](const auto& a, const auto& b) {
        return std::tie(a->type, a->sector) < std::tie(b->type, b->sector);
    });
    std::vector<std::unique_ptr<InFlight>> run;
    uint64_t run_bytes = 0;
    size_t run_buffers = 0;
    for (std::unique_ptr<InFlight>& request : batch_) {
        if (!run.empty()) {
            const InFlight& last = *run.back();
            bool joins =
                request->type == last.type &&
                request->sector * kBlkSectorSize == last.sector * kBlkSectorSize + last.bytes &&
                run_bytes + request->bytes <= kMaxMergedBytes &&
                run_buffers + request->buffers.size() <= kMaxMergedBuffers;
            if (!joins) {
                send_merged(std::move(run));
                run.clear();
                run_bytes = 0;
                run_buffers = 0;
            }
        }
        run_bytes += request->bytes;
        run_buffers += request->buffers.size();
        run.push_back(std::move(request));
    }
    if (!run.empty()) {
        send_merged(std::move(run));
    }
    batch_.clear();
}

void VirtioBlock::send_merged(std::vector<std::unique_ptr<InFlight>> parts) {
    uint64_t offset = parts.front()->sector * kBlkSectorSize;
    bool write = parts.front()->type == virtio::kBlkTypeOut;
    if (parts.size() == 1) {
        DiskRequest request = write ? DiskRequest::write(offset, parts.front()->buffers)
                                    : DiskRequest::read(offset, parts.front()->buffers);
        send(std::move(parts.front()), request);
        return;
    }
    struct Merged {
        std::vector<std::unique_ptr<InFlight>> parts;
        std::vector<iovec> buffers;
    };
    auto merged = std::make_shared<Merged>();
    for (const auto& part : parts) {
        merged->buffers.insert(merged->buffers.end(), part->buffers.begin(), part->buffers.end());
    }
    merged->parts = std::move(parts);
    DiskRequest request = write ? DiskRequest::write(offset, merged->buffers)
                                : DiskRequest::read(offset, merged->buffers);
    image_->submit(io_, request, [this, merged](const IoError* failure) {
        for (std::unique_ptr<InFlight>& part : merged->parts) {
            finished(*part, failure);
        }
    });
}

std::optional<VirtioBlock::Result> VirtioBlock::flush(const InFlight& chain) {
    send_batch();  // the writes before it go first
    auto request = std::make_unique<InFlight>(chain);
    request->type = virtio::kBlkTypeFlush;
    send(std::move(request), DiskRequest::flush());
    return std::nullopt;
}

void VirtioBlock::send(std::unique_ptr<InFlight> request, const DiskRequest& disk_request) {
    InFlight* raw = request.release();
    image_->submit(io_, disk_request, [this, raw](const IoError* failure) {
        std::unique_ptr<InFlight> owned(raw);
        finished(*owned, failure);
    });
}

void VirtioBlock::finished(InFlight& request, const IoError* failure) {
    if (!active_) {
        return;  // completed while reset() drains: the driver forgot the queue
    }
    if (failure) {
        log_.warn("{} at sector {} failed: {}", type_name(request.type), request.sector,
                  failure->what());
        finish(request, {virtio::kBlkStatusIoErr, 0});
        return;
    }
    if (request.type == virtio::kBlkTypeOut && write_through()) {
        // FLUSH offered but not negotiated: the driver counts on a write-through
        // cache, so a write is stable when it completes (5.2.6.3, case 1).
        // Counted as the write it was; its flush counts when it completes.
        counters_.write_ops.fetch_add(1, std::memory_order_relaxed);
        counters_.write_bytes.fetch_add(request.bytes, std::memory_order_relaxed);
        request.type = virtio::kBlkTypeFlush;
        request.buffers.clear();
        send(std::make_unique<InFlight>(std::move(request)), DiskRequest::flush());
        return;
    }
    finish(request, {virtio::kBlkStatusOk, request.read_bytes});
}

VirtioBlock::Result VirtioBlock::get_id(std::span<const GuestBuffer> out) {
    uint32_t written = scatter(active_->memory, out,
                               std::span(reinterpret_cast<const uint8_t*>(id_.data()), id_.size()));
    return {virtio::kBlkStatusOk, written};
}

VirtioBlock::Result VirtioBlock::discard_or_zero(uint32_t type, std::span<const GuestBuffer> in) {
    bool discard = type == virtio::kBlkTypeDiscard;
    if (image_->read_only()) {
        log_.debug("{} refused: the disk is read-only", type_name(type));
        return {virtio::kBlkStatusIoErr, 0};
    }
    if (!negotiated(discard ? virtio::kBlkFeatureDiscard : virtio::kBlkFeatureWriteZeroes)) {
        return {virtio::kBlkStatusUnsupp, 0};
    }
    uint32_t max_segments = discard ? kMaxDiscardSegments : kMaxWriteZeroesSegments;
    uint32_t max_sectors = discard ? kMaxDiscardSectors : kMaxWriteZeroesSectors;
    uint64_t length = total_length(in);
    constexpr uint64_t kSegmentSize = sizeof(virtio::BlkDiscardWriteZeroes);
    if (length == 0 || length % kSegmentSize != 0 || length / kSegmentSize > max_segments) {
        log_.debug("{} with {} bytes of segments refused (up to {} segments of {} bytes)",
                   type_name(type), length, max_segments, kSegmentSize);
        return {virtio::kBlkStatusIoErr, 0};
    }
    std::vector<virtio::BlkDiscardWriteZeroes> segments(length / kSegmentSize);
    if (!gather(active_->memory, in,
                std::span(reinterpret_cast<uint8_t*>(segments.data()), length))) {
        return {virtio::kBlkStatusIoErr, 0};
    }
    // Every segment is checked before any is carried out. Reserved flags, and
    // unmap on a discard, are UNSUPP (5.2.6.2).
    for (const auto& segment : segments) {
        uint32_t allowed = discard ? 0 : virtio::kBlkFlagUnmap;
        if ((segment.flags & ~allowed) != 0) {
            log_.debug("{} with flags {:#x} refused", type_name(type), segment.flags);
            return {virtio::kBlkStatusUnsupp, 0};
        }
    }
    for (const auto& segment : segments) {
        if (segment.num_sectors > max_sectors ||
            !in_capacity(segment.sector, uint64_t{segment.num_sectors} * kBlkSectorSize)) {
            log_.debug("{} of {} sectors at sector {} refused (capacity {}, at most {})",
                       type_name(type), segment.num_sectors, segment.sector, capacity_,
                       max_sectors);
            return {virtio::kBlkStatusIoErr, 0};
        }
    }
    // It may free clusters that requests in flight use: they complete first.
    send_batch();
    io_.drain();
    for (const auto& segment : segments) {
        uint64_t offset = segment.sector * kBlkSectorSize;
        uint64_t bytes = uint64_t{segment.num_sectors} * kBlkSectorSize;
        if (bytes == 0) {
            continue;  // nothing to do; an image may refuse an empty range
        }
        if (discard) {
            image_->discard(offset, bytes);
        } else {
            image_->write_zeroes(offset, bytes, (segment.flags & virtio::kBlkFlagUnmap) != 0);
        }
    }
    if (write_through()) {
        image_->flush();
    }
    return {virtio::kBlkStatusOk, 0};
}

}  // namespace vireo
