#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "devices/virtio/device_worker.h"
#include "devices/virtio/virtqueue.h"
#include "memory/guest_memory.h"

namespace vireo {

// How a device tells the driver about its work; the transport implements it
// (MSI-X with the PCI transport). Safe from the device's worker thread.
class VirtioInterrupt {
public:
    virtual ~VirtioInterrupt() = default;
    // Used buffers were added to `queue` (call when Virtqueue::needs_interrupt()).
    virtual void signal_used(uint16_t queue) = 0;
    // The device-specific configuration changed (bumps config_generation).
    virtual void signal_config_change() = 0;
    // For a device whose back end in the host kernel signals `queue` itself
    // (vhost): calls `route(fd)` now and whenever it changes, with the eventfd
    // that raises the queue's interrupt in the hypervisor while it may fire, or
    // -1 while it may not (masked, MSI-X off, no such eventfd), when the device
    // must signal through signal_used() so that the transport keeps it pending.
    // Only from activate(); `route` runs on vCPU threads until reset().
    virtual void route_used_signals(uint16_t /*queue*/, std::function<void(int fd)> route) {
        route(-1);
    }
};

// What the transport hands a device when the driver sets DRIVER_OK. Everything
// in it stays valid until reset() returns.
struct VirtioActivation {
    const GuestMemory& memory;
    uint64_t features;            // negotiated
    std::span<Virtqueue> queues;  // indexed by queue number; disabled ones are inert
    VirtioInterrupt& interrupt;
    // Each queue's doorbell, signalled when the driver notifies it; for a
    // device that hands queues to the host kernel (vhost), which reads them.
    std::span<const EventFd> notifiers = {};
};

// A virtio device type (net, block, entropy...) independent of its transport.
// The transport owns feature negotiation, the status state machine, queue setup
// and the worker thread; the device only processes its queues. virtio-rng
// (rng.h) is the smallest complete example: copy it for a new device.
//
// Threads: activate(), reset() and config accesses come from vCPU threads
// (serialized by the transport, never while a process_queue() runs for
// activate/reset); process_queue() runs on the device's worker thread.
class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;

    // Virtio device ID (spec 5: 1 net, 2 block, 4 entropy...).
    virtual uint32_t device_type() const = 0;
    // For log lines: "virtio-rng".
    virtual std::string_view name() const = 0;
    // Device-specific feature bits offered; the transport adds its own
    // (VIRTIO_F_VERSION_1, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX).
    virtual uint64_t device_features() const = 0;
    virtual uint16_t queue_count() const = 0;
    // Largest size (a power of two) the driver may give each queue.
    virtual uint16_t queue_max_size() const = 0;

    // Device-specific configuration (the VIRTIO_PCI_CAP_DEVICE_CFG structure).
    // The transport keeps offset + data.size() within config_size().
    virtual uint32_t config_size() const { return 0; }
    virtual void config_read(uint32_t /*offset*/, std::span<uint8_t> data) {
        std::fill(data.begin(), data.end(), 0);
    }
    virtual void config_write(uint32_t /*offset*/, std::span<const uint8_t> /*data*/) {}

    // The driver set DRIVER_OK. Keep `activation` for process_queue().
    virtual void activate(const VirtioActivation& activation) = 0;
    // The driver notified `queue` (on the worker thread). Pop until the queue is
    // empty, push what was used, signal if needs_interrupt(). A broken queue pops
    // nothing; the transport notices its fault() and marks the device broken.
    virtual void process_queue(uint16_t queue) = 0;
    // More file descriptors the worker watches while the device is active (a
    // disk's I/O completions), asked for after activate(); the handlers run on
    // the worker thread, like process_queue().
    virtual std::vector<DeviceWorker::Source> worker_sources() { return {}; }
    // Whether the device reads `queue`'s notifier itself (through vhost) since
    // activate(): the worker then neither watches it nor calls process_queue().
    virtual bool reads_notifications(uint16_t /*queue*/) const { return false; }
    // Back to the state before activate(): the driver wrote 0 to device_status
    // (or the device was broken and is being reset). The worker has stopped.
    virtual void reset() = 0;
};

}  // namespace vireo
