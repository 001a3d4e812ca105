#include "devices/virtio/virtqueue.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

#include "devices/virtio/virtio_spec.h"

namespace vireo {

namespace {

// Ring indexes shared with the driver. The spans were validated and the rings'
// guest addresses checked for alignment; guest RAM is page aligned on the host,
// so the host pointers are aligned too.
std::atomic_ref<uint16_t> ring_u16(uint8_t* base, uint64_t offset) {
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(base + offset));
}

}  // namespace

std::string_view to_string(VirtqueueError error) {
    switch (error) {
        case VirtqueueError::kInvalidSize:
            return "invalid queue size";
        case VirtqueueError::kRingMisaligned:
            return "misaligned ring";
        case VirtqueueError::kRingOutsideMemory:
            return "ring outside guest memory";
        case VirtqueueError::kAvailIndexJump:
            return "available index moved by more than the queue size";
        case VirtqueueError::kDescriptorIndexOutOfRange:
            return "descriptor index out of range";
        case VirtqueueError::kDescriptorLoop:
            return "descriptor chain loops";
        case VirtqueueError::kBufferOutsideMemory:
            return "buffer outside guest memory";
        case VirtqueueError::kReadableAfterWritable:
            return "device-readable buffer after a device-writable one";
        case VirtqueueError::kChainTooLarge:
            return "descriptor chain too large";
        case VirtqueueError::kIndirectNotNegotiated:
            return "indirect descriptor without VIRTIO_F_INDIRECT_DESC";
        case VirtqueueError::kNestedIndirect:
            return "nested indirect descriptor table";
        case VirtqueueError::kIndirectWithNext:
            return "indirect descriptor with VIRTQ_DESC_F_NEXT";
        case VirtqueueError::kBadIndirectTable:
            return "invalid indirect descriptor table";
        case VirtqueueError::kInvalidUsedHead:
            return "used head out of range";
    }
    return "unknown virtqueue error";
}

Virtqueue::Virtqueue(const GuestMemory& memory, const VirtqueueConfig& config, uint64_t features,
                     uint64_t max_chain_bytes)
    : memory_(&memory),
      size_(config.size),
      indirect_((features >> virtio::kFeatureIndirectDesc) & 1),
      event_idx_((features >> virtio::kFeatureEventIdx) & 1),
      max_chain_bytes_(max_chain_bytes) {
    if (size_ == 0 || size_ > virtio::kMaxQueueSize || !std::has_single_bit(size_)) {
        set_fault(VirtqueueError::kInvalidSize, fmt::format("size {}", config.size));
        return;
    }
    if (config.desc_table % virtio::kDescTableAlign != 0 ||
        config.avail_ring % virtio::kAvailRingAlign != 0 ||
        config.used_ring % virtio::kUsedRingAlign != 0) {
        set_fault(VirtqueueError::kRingMisaligned,
                  fmt::format("desc {:#x} avail {:#x} used {:#x}", config.desc_table,
                              config.avail_ring, config.used_ring));
        return;
    }
    auto desc = memory.span(config.desc_table, uint64_t{size_} * sizeof(virtio::VirtqDesc));
    auto avail = memory.span(config.avail_ring, virtio::avail_ring_size(size_));
    auto used = memory.span(config.used_ring, virtio::used_ring_size(size_));
    if (!desc || !avail || !used) {
        set_fault(VirtqueueError::kRingOutsideMemory,
                  fmt::format("size {} desc {:#x} avail {:#x} used {:#x}", size_, config.desc_table,
                              config.avail_ring, config.used_ring));
        return;
    }
    desc_ = desc->data();
    avail_ = avail->data();
    used_ = used->data();
}

void Virtqueue::set_fault(VirtqueueError error, std::string detail) {
    if (!fault_) {
        fault_ = VirtqueueFault{error, std::move(detail)};
    }
}

uint16_t Virtqueue::load_avail_idx() const {
    // Acquire: the ring entries and descriptors the driver wrote before bumping
    // idx are visible once we see the new idx.
    return ring_u16(avail_, virtio::kAvailIdxOffset).load(std::memory_order_acquire);
}

void Virtqueue::store_avail_event(uint16_t value) {
    // Sequentially consistent (a full barrier on x86), ordered before the
    // re-read of avail->idx in pop(): the driver does the mirror image.
    ring_u16(used_, virtio::avail_event_offset(size_)).store(value, std::memory_order_seq_cst);
}

std::optional<DescriptorChain> Virtqueue::pop() {
    if (!ready()) {
        return std::nullopt;
    }
    uint16_t avail_idx = load_avail_idx();
    seen_avail_ = avail_idx;
    if (avail_idx == next_avail_) {
        if (!event_idx_) {
            return std::nullopt;
        }
        if (!notifications_) {
            kick_wanted_ = true;  // asked for when notifications are back on
            return std::nullopt;
        }
        // Ask for a kick when the next chain arrives, then look again: a chain
        // added between our two reads would otherwise wait for a kick that the
        // driver decided not to send.
        store_avail_event(next_avail_);
        avail_idx = ring_u16(avail_, virtio::kAvailIdxOffset).load(std::memory_order_seq_cst);
        seen_avail_ = avail_idx;
        if (avail_idx == next_avail_) {
            return std::nullopt;
        }
    }
    auto pending = static_cast<uint16_t>(avail_idx - next_avail_);
    if (pending > size_) {
        set_fault(VirtqueueError::kAvailIndexJump,
                  fmt::format("avail idx {} with {} consumed, queue size {}", avail_idx,
                              next_avail_, size_));
        return std::nullopt;
    }
    uint16_t head =
        ring_u16(avail_, virtio::kAvailRingOffset + 2 * static_cast<uint64_t>(next_avail_ % size_))
            .load(std::memory_order_relaxed);
    auto chain = walk_chain(head);
    if (chain) {
        ++next_avail_;
    }
    return chain;
}

uint16_t Virtqueue::newly_available() {
    if (!ready()) {
        return 0;
    }
    // Sequentially consistent: after set_notifications(true)'s store (2.7.10).
    uint16_t avail_idx = ring_u16(avail_, virtio::kAvailIdxOffset).load(std::memory_order_seq_cst);
    auto added = static_cast<uint16_t>(avail_idx - seen_avail_);
    seen_avail_ = avail_idx;
    auto untaken = static_cast<uint16_t>(avail_idx - next_avail_);
    // A hostile index is pop()'s to refuse; it counts a queue's worth at most.
    return std::min({added, untaken, size_});
}

void Virtqueue::set_notifications(bool enabled) {
    if (!ready() || notifications_ == enabled) {
        return;
    }
    notifications_ = enabled;
    if (event_idx_) {
        // Off: avail_event stays behind, so no chain the driver adds crosses
        // it. On: the kick pop() would have asked for meanwhile, if it found
        // the ring empty (a receive queue with buffers to spare asks none).
        if (enabled && kick_wanted_) {
            kick_wanted_ = false;
            store_avail_event(next_avail_);
        }
        return;
    }
    // Sequentially consistent: before the caller re-reads avail->idx (2.7.10).
    ring_u16(used_, virtio::kUsedFlagsOffset)
        .store(enabled ? 0 : virtio::kUsedFlagNoNotify, std::memory_order_seq_cst);
}

std::optional<DescriptorChain> Virtqueue::walk_chain(uint16_t head) {
    DescriptorChain chain;
    chain.head = head;
    if (head >= size_) {
        set_fault(VirtqueueError::kDescriptorIndexOutOfRange,
                  fmt::format("head {} in a queue of {}", head, size_));
        return std::nullopt;
    }
    const uint8_t* table = desc_;
    uint32_t table_size = size_;
    bool in_indirect = false;
    uint32_t index = head;
    uint32_t visited = 0;
    uint64_t total = 0;
    while (true) {
        if (++visited > table_size) {
            set_fault(VirtqueueError::kDescriptorLoop,
                      fmt::format("chain from head {} visits more than {} {}descriptors", head,
                                  table_size, in_indirect ? "indirect " : ""));
            return std::nullopt;
        }
        virtio::VirtqDesc desc;
        std::memcpy(&desc, table + uint64_t{index} * sizeof(desc), sizeof(desc));

        if (desc.flags & virtio::kDescFlagIndirect) {
            if (!indirect_) {
                set_fault(VirtqueueError::kIndirectNotNegotiated,
                          fmt::format("descriptor {} of chain {}", index, head));
                return std::nullopt;
            }
            if (in_indirect) {
                set_fault(VirtqueueError::kNestedIndirect,
                          fmt::format("indirect descriptor {} of chain {}", index, head));
                return std::nullopt;
            }
            if (desc.flags & virtio::kDescFlagNext) {
                set_fault(VirtqueueError::kIndirectWithNext,
                          fmt::format("descriptor {} of chain {}", index, head));
                return std::nullopt;
            }
            auto entries = desc.len / sizeof(virtio::VirtqDesc);
            auto indirect = memory_->span(desc.addr, desc.len);
            if (desc.len == 0 || desc.len % sizeof(virtio::VirtqDesc) != 0 ||
                entries > virtio::kMaxQueueSize || !indirect) {
                set_fault(VirtqueueError::kBadIndirectTable,
                          fmt::format("table {:#x}+{:#x} in descriptor {} of chain {}", desc.addr,
                                      desc.len, index, head));
                return std::nullopt;
            }
            // Device-writable flag of this descriptor is ignored (2.7.5.3.2).
            table = indirect->data();
            table_size = static_cast<uint32_t>(entries);
            in_indirect = true;
            index = 0;
            visited = 0;
            continue;
        }

        if (!memory_->contains(desc.addr, desc.len)) {
            set_fault(VirtqueueError::kBufferOutsideMemory,
                      fmt::format("{:#x}+{:#x} in {}descriptor {} of chain {}", desc.addr, desc.len,
                                  in_indirect ? "indirect " : "", index, head));
            return std::nullopt;
        }
        total += desc.len;
        if (total > max_chain_bytes_) {
            set_fault(VirtqueueError::kChainTooLarge,
                      fmt::format("chain {} carries more than {} bytes", head, max_chain_bytes_));
            return std::nullopt;
        }
        if (desc.flags & virtio::kDescFlagWrite) {
            chain.writable.push_back({desc.addr, desc.len});
        } else if (!chain.writable.empty()) {
            set_fault(VirtqueueError::kReadableAfterWritable,
                      fmt::format("{}descriptor {} of chain {}", in_indirect ? "indirect " : "",
                                  index, head));
            return std::nullopt;
        } else {
            chain.readable.push_back({desc.addr, desc.len});
        }

        if (!(desc.flags & virtio::kDescFlagNext)) {
            return chain;
        }
        index = desc.next;
        if (index >= table_size) {
            set_fault(VirtqueueError::kDescriptorIndexOutOfRange,
                      fmt::format("next {} in a {}table of {} (chain {})", index,
                                  in_indirect ? "indirect " : "", table_size, head));
            return std::nullopt;
        }
    }
}

void Virtqueue::push(uint16_t head, uint32_t written) {
    if (!ready()) {
        return;
    }
    if (head >= size_) {
        set_fault(VirtqueueError::kInvalidUsedHead,
                  fmt::format("head {} in a queue of {}", head, size_));
        return;
    }
    virtio::VirtqUsedElem element{head, written};
    std::memcpy(used_ + virtio::kUsedRingOffset +
                    static_cast<uint64_t>(next_used_ % size_) * sizeof(virtio::VirtqUsedElem),
                &element, sizeof(element));
    ++next_used_;
    // The element (and the buffers' contents) before the index. Sequentially
    // consistent rather than just release: needs_interrupt() reads the driver's
    // suppression fields after it, and the driver reads used->idx after
    // writing them (a full barrier on both sides, 2.7.10).
    ring_u16(used_, virtio::kUsedIdxOffset).store(next_used_, std::memory_order_seq_cst);
}

bool Virtqueue::needs_interrupt() {
    if (!ready()) {
        return false;
    }
    uint16_t previous = signalled_used_;
    signalled_used_ = next_used_;
    if (previous == next_used_) {
        return false;
    }
    if (event_idx_) {
        uint16_t used_event =
            ring_u16(avail_, virtio::used_event_offset(size_)).load(std::memory_order_seq_cst);
        // vring_need_event(): used_event lies in [previous, next_used_).
        return static_cast<uint16_t>(next_used_ - used_event - 1) <
               static_cast<uint16_t>(next_used_ - previous);
    }
    uint16_t flags = ring_u16(avail_, virtio::kAvailFlagsOffset).load(std::memory_order_relaxed);
    return (flags & virtio::kAvailFlagNoInterrupt) == 0;
}

bool Virtqueue::needs_interrupt_mid_batch() {
    return event_idx_ && needs_interrupt();
}

}  // namespace vireo
