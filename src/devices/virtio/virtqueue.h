#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memory/guest_memory.h"

namespace vireo {

// What a guest can get wrong in a split virtqueue. Any of them leaves the queue
// broken: it does nothing more until the driver resets the device.
enum class VirtqueueError {
    kInvalidSize,                // queue size 0, not a power of two, or over 32768
    kRingMisaligned,             // a ring part not at its required alignment
    kRingOutsideMemory,          // a ring part not wholly inside guest RAM
    kAvailIndexJump,             // avail->idx moved by more than the queue size
    kDescriptorIndexOutOfRange,  // a head or next index past its table
    kDescriptorLoop,             // more descriptors visited than the table holds
    kBufferOutsideMemory,        // a buffer not wholly inside guest RAM
    kReadableAfterWritable,      // a device-readable buffer after a writable one
    kChainTooLarge,              // total buffer bytes over the queue's limit
    kIndirectNotNegotiated,      // VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC
    kNestedIndirect,             // an indirect descriptor inside an indirect table
    kIndirectWithNext,           // VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT
    kBadIndirectTable,           // indirect table empty, not 16-byte multiple, too big, outside RAM
    kInvalidUsedHead,            // the device returned a head that is not a descriptor index
};

std::string_view to_string(VirtqueueError error);

struct VirtqueueFault {
    VirtqueueError error;
    std::string detail;  // the values that were wrong, for the log line
};

// Where the driver put the queue (the common configuration's queue_* fields).
struct VirtqueueConfig {
    uint16_t size = 0;
    uint64_t desc_table = 0;  // Descriptor Area
    uint64_t avail_ring = 0;  // Driver Area
    uint64_t used_ring = 0;   // Device Area
};

// A buffer of a chain, validated to lie wholly inside guest RAM.
struct GuestBuffer {
    uint64_t address;
    uint32_t length;
    bool operator==(const GuestBuffer&) const = default;
};

struct DescriptorChain {
    uint16_t head = 0;
    std::vector<GuestBuffer> readable;  // device-readable buffers, in order
    std::vector<GuestBuffer> writable;  // device-writable buffers, after them
};

// The device side of one split virtqueue (virtio 1.x, 2.7) in guest memory.
// The guest is hostile: every index, address and length it wrote is checked,
// and the first defect found is kept in fault() instead of being thrown; from
// then on pop() returns nothing and push() does nothing. Ring parts are mapped
// once (their spans validated) and ring indexes are accessed with atomic_ref;
// descriptors are copied once before they are checked, so the guest cannot
// change them between check and use. Not thread-safe: one thread owns a queue.
class Virtqueue {
public:
    // No chain may carry more bytes than the used ring's 32-bit length can report.
    static constexpr uint64_t kDefaultMaxChainBytes = 0xffff'ffff;

    // An inert queue (not enabled by the driver): pop() returns nothing, no fault.
    Virtqueue() = default;
    // `features` are the negotiated ones (VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX
    // matter here). A bad config gives a queue that is born broken.
    Virtqueue(const GuestMemory& memory, const VirtqueueConfig& config, uint64_t features,
              uint64_t max_chain_bytes = kDefaultMaxChainBytes);

    bool ready() const { return size_ != 0 && !fault_; }
    // Where the rings lie in the VMM's view of guest RAM, for a queue handed
    // to the host kernel (vhost).
    struct HostRings {
        const void* descriptors;
        const void* available;
        const void* used;
    };
    HostRings host_rings() const { return {desc_, avail_, used_}; }
    uint16_t size() const { return size_; }
    const std::optional<VirtqueueFault>& fault() const { return fault_; }

    // The next chain the driver made available, or nullopt when there is none
    // (or the queue is broken: check fault()). Call until nullopt: with
    // VIRTIO_F_EVENT_IDX, finding the ring empty is what asks the driver to kick
    // again (unless notifications are off).
    std::optional<DescriptorChain> pop();
    // How many chains the driver made available since the queue last read
    // avail->idx (here or in pop()) that pop() has not taken yet; reads
    // avail->idx only. For a device that looks at the ring itself instead of
    // waiting for the driver's notification.
    uint16_t newly_available();
    // Off: the driver need not notify (pop() no longer asks for a kick when it
    // finds the ring empty; without VIRTIO_F_EVENT_IDX, VIRTQ_USED_F_NO_NOTIFY).
    // On: it must again; look again afterwards (newly_available(), pop()),
    // or a chain made available before the driver saw it may wait for a
    // notification that never comes.
    void set_notifications(bool enabled);
    // Returns chain `head` to the driver with `written` bytes written into its
    // writable buffers, and publishes it (used->idx, release order).
    void push(uint16_t head, uint32_t written);
    // After one or more push(): whether the driver wants a used-buffer
    // notification now (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with
    // VIRTIO_F_EVENT_IDX).
    bool needs_interrupt();
    // For a device in the middle of a long batch (a frame a system call):
    // whether the driver asked, with VIRTIO_F_EVENT_IDX's used_event, to be
    // notified by now. A driver that waits for that notification to refill
    // the ring would otherwise wait for the whole batch. Without
    // VIRTIO_F_EVENT_IDX, false: the flag alone would ask for one per
    // request until the driver runs; needs_interrupt() at the batch's end.
    bool needs_interrupt_mid_batch();

private:
    std::optional<DescriptorChain> walk_chain(uint16_t head);
    void set_fault(VirtqueueError error, std::string detail);
    uint16_t load_avail_idx() const;
    void store_avail_event(uint16_t value);

    const GuestMemory* memory_ = nullptr;
    uint16_t size_ = 0;
    bool indirect_ = false;
    bool event_idx_ = false;
    uint64_t max_chain_bytes_ = kDefaultMaxChainBytes;
    uint8_t* desc_ = nullptr;   // host view of the descriptor table
    uint8_t* avail_ = nullptr;  // host view of the available ring
    uint8_t* used_ = nullptr;   // host view of the used ring
    uint16_t next_avail_ = 0;
    uint16_t next_used_ = 0;
    uint16_t signalled_used_ = 0;  // used idx at the last needs_interrupt()
    uint16_t seen_avail_ = 0;      // avail idx when last read
    bool notifications_ = true;
    bool kick_wanted_ = false;  // pop() found the ring empty while notifications were off
    std::optional<VirtqueueFault> fault_;
};

}  // namespace vireo
