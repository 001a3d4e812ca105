#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/unique_fd.h"

namespace vireo {

// The host kernel's vhost-net: it moves a virtio-net device's receive and
// transmit rings to and from a TAP itself, in a kernel thread, woken by the
// queues' doorbells (the same ioeventfds the VMM would read) and signalling
// used buffers on an eventfd per queue. The VMM keeps the control plane:
// features, the control queue, link status, reset.
class VhostNet {
public:
    static constexpr uint32_t kReceiveQueue = 0;
    static constexpr uint32_t kTransmitQueue = 1;

    // A range of guest RAM and where the VMM maps it.
    struct MemoryRegion {
        uint64_t guest_address;
        uint64_t size;
        const void* host;
    };
    // A queue the driver set up, in the VMM's view of guest RAM.
    struct Ring {
        uint16_t size;
        const void* descriptors;
        const void* available;
        const void* used;
        int kick_fd;  // readable when the driver notifies the queue
        int call_fd;  // vhost writes it when the driver wants an interrupt
    };

    // Opens /dev/vhost-net for this process, or throws vireo::Error saying why
    // it cannot (no such device: the vhost_net module is not loaded).
    static std::unique_ptr<VhostNet> open();

    // The virtio features vhost-net implements (VHOST_GET_FEATURES).
    uint64_t features() const { return features_; }
    // Hands over the negotiated ring features and guest RAM. Throws vireo::Error.
    void configure(uint64_t features, std::span<const MemoryRegion> memory);
    // Starts moving `queue`'s frames between its ring and the TAP `tap_fd`,
    // from the ring's start. Throws vireo::Error.
    void start(uint32_t queue, const Ring& ring, int tap_fd);
    // Detaches the TAP from `queue` (its frames stop); its ring stays set up,
    // and start_backend resumes it.
    void stop_backend(uint32_t queue);
    void start_backend(uint32_t queue, int tap_fd);
    // Where vhost signals `queue`'s used buffers from now on (Ring::call_fd).
    void set_call(uint32_t queue, int call_fd);

private:
    explicit VhostNet(UniqueFd fd);
    void set_backend(uint32_t queue, int tap_fd, const char* what);

    UniqueFd fd_;
    uint64_t features_ = 0;
};

}  // namespace vireo
