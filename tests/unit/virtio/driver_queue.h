#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "devices/virtio/virtio_spec.h"
#include "devices/virtio/virtqueue.h"
#include "memory/guest_memory.h"

namespace vireo::testing {

// One buffer of a chain, as the driver describes it.
struct Buf {
    uint64_t address;
    uint32_t length;
    bool writable = false;
};

// The driver side of a split virtqueue, written straight into guest memory the
// way a guest driver lays it out: descriptor table, available ring, used ring.
class DriverQueue {
public:
    DriverQueue(const GuestMemory& memory, uint16_t size, uint64_t base)
        : memory_(memory),
          size_(size),
          desc_(base),
          avail_(base + 16 * uint64_t{size}),
          used_((avail_ + virtio::avail_ring_size(size) + 3) & ~uint64_t{3}) {
        // A driver zeroes its rings before handing them over.
        std::vector<uint8_t> zeros(used_ + virtio::used_ring_size(size) - base);
        EXPECT_TRUE(memory_.write(base, zeros.data(), zeros.size()));
    }

    VirtqueueConfig config() const { return {size_, desc_, avail_, used_}; }
    uint64_t end() const { return used_ + virtio::used_ring_size(size_); }

    void set_desc(uint16_t index, uint64_t address, uint32_t length, uint16_t flags,
                  uint16_t next = 0) {
        virtio::VirtqDesc desc{address, length, flags, next};
        EXPECT_TRUE(memory_.write_object(desc_ + 16 * uint64_t{index}, desc));
    }

    // Links `bufs` through free descriptors; returns the head.
    uint16_t add_chain(const std::vector<Buf>& bufs) {
        uint16_t head = next_free_;
        for (size_t i = 0; i < bufs.size(); ++i) {
            uint16_t index = next_free_++ % size_;
            bool last = i + 1 == bufs.size();
            set_desc(index, bufs[i].address, bufs[i].length,
                     static_cast<uint16_t>((bufs[i].writable ? virtio::kDescFlagWrite : 0) |
                                           (last ? 0 : virtio::kDescFlagNext)),
                     static_cast<uint16_t>(next_free_ % size_));
        }
        return static_cast<uint16_t>(head % size_);
    }

    // Writes `bufs` as an indirect table at `table` and one descriptor naming it.
    uint16_t add_indirect(uint64_t table, const std::vector<Buf>& bufs) {
        for (size_t i = 0; i < bufs.size(); ++i) {
            bool last = i + 1 == bufs.size();
            virtio::VirtqDesc desc{
                bufs[i].address, bufs[i].length,
                static_cast<uint16_t>((bufs[i].writable ? virtio::kDescFlagWrite : 0) |
                                      (last ? 0 : virtio::kDescFlagNext)),
                static_cast<uint16_t>(i + 1)};
            EXPECT_TRUE(memory_.write_object(table + 16 * i, desc));
        }
        uint16_t head = next_free_++ % size_;
        set_desc(head, table, static_cast<uint32_t>(16 * bufs.size()), virtio::kDescFlagIndirect);
        return head;
    }

    // Puts `head` in the available ring and publishes it.
    void make_available(uint16_t head) {
        EXPECT_TRUE(memory_.write_object(
            avail_ + virtio::kAvailRingOffset + 2 * static_cast<uint64_t>(avail_idx_ % size_),
            head));
        set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
    }
    void set_avail_idx(uint16_t value) {
        avail_idx_ = value;
        index(avail_ + virtio::kAvailIdxOffset).store(value, std::memory_order_seq_cst);
    }
    void set_avail_flags(uint16_t flags) {
        EXPECT_TRUE(memory_.write_object(avail_ + virtio::kAvailFlagsOffset, flags));
    }
    void set_used_event(uint16_t value) {
        EXPECT_TRUE(memory_.write_object(avail_ + virtio::used_event_offset(size_), value));
    }

    uint16_t used_idx() const {
        return index(used_ + virtio::kUsedIdxOffset).load(std::memory_order_seq_cst);
    }
    virtio::VirtqUsedElem used(uint16_t index) const {
        return memory_
            .read_object<virtio::VirtqUsedElem>(used_ + virtio::kUsedRingOffset +
                                                8 * uint64_t{static_cast<uint16_t>(index % size_)})
            .value();
    }
    uint16_t avail_event() const {
        return memory_.read_object<uint16_t>(used_ + virtio::avail_event_offset(size_)).value();
    }
    uint16_t used_flags() const {
        return index(used_ + virtio::kUsedFlagsOffset).load(std::memory_order_seq_cst);
    }

private:
    // A ring index shared with the device, accessed as the device does.
    std::atomic_ref<uint16_t> index(uint64_t address) const {
        auto bytes = memory_.span(address, 2);
        EXPECT_TRUE(bytes.has_value());
        return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(bytes->data()));
    }

    const GuestMemory& memory_;
    uint16_t size_;
    uint64_t desc_;
    uint64_t avail_;
    uint64_t used_;
    uint16_t next_free_ = 0;
    uint16_t avail_idx_ = 0;
};

}  // namespace vireo::testing
