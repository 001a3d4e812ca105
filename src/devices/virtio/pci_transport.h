#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "base/rate_limited_log.h"
#include "devices/interrupts.h"
#include "devices/pci/config_space.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/virtio/device_worker.h"
#include "devices/virtio/virtio_device.h"
#include "devices/virtio/virtqueue.h"
#include "devices/virtio/worker_pace.h"
#include "memory/guest_memory.h"

namespace vireo {

// A virtio device on PCI, modern interface only (virtio 1.x, 4.1): PCI device
// 0x1040 + type, revision 1. Everything lives in one 64-bit memory BAR (BAR 0,
// 32 KiB), one 4 KiB page per structure:
//
//   0x0000 common configuration      0x3000 notifications (4 bytes per queue)
//   0x1000 ISR status                0x4000 MSI-X table
//   0x2000 device configuration      0x5000 MSI-X PBA
//
// plus a VIRTIO_PCI_CAP_PCI_CFG window in config space. Interrupts are MSI-X
// only, one table entry per queue plus one for configuration changes; there is
// no INTx (interrupt pin 0): every virtio 1.x driver we target enables MSI-X,
// and a driver that does not gets no interrupts (the ISR byte still works for
// polling).
//
// Guest kicks: when the driver enables a queue, its notify address is bound to
// an EventFd through the IoEventRegistry (ioeventfd: the vCPU does not exit); a
// plain MMIO write there signals the same EventFd, so without a registry
// (tests) or before the BAR is placed, kicks still work. The device's queues
// are processed on a DeviceWorker thread started at DRIVER_OK and joined on
// reset and destruction.
//
// A virtqueue fault makes the device broken: one rate-limited log line,
// DEVICE_NEEDS_RESET in device_status, a configuration-change interrupt, no more
// queue processing until the driver resets the device (device_status = 0).
class VirtioPciDevice final : public PciDevice, private VirtioInterrupt {
public:
    static constexpr uint8_t kBar = 0;
    static constexpr uint64_t kBarSize = 0x8000;
    static constexpr uint64_t kRegionSize = 0x1000;
    static constexpr uint64_t kCommonCfgOffset = 0x0000;
    static constexpr uint64_t kIsrOffset = 0x1000;
    static constexpr uint64_t kDeviceCfgOffset = 0x2000;
    static constexpr uint64_t kNotifyOffset = 0x3000;
    static constexpr uint32_t kNotifyOffMultiplier = 4;
    static constexpr uint64_t kMsixTableOffset = 0x4000;
    static constexpr uint64_t kMsixPbaOffset = 0x5000;
    static constexpr uint16_t kSubsystemId = 0x40;  // >= 0x40: not for legacy drivers

    // `memory` and `ioevents` (may be null) must outlive the device; `msi` is only
    // used here, to create the vectors. `name` labels log lines and the worker
    // thread (default: the device's name), which waits for work at `pace`
    // (DeviceWorker). Throws vireo::Error if the device asks
    // for more queues or configuration than the layout holds.
    VirtioPciDevice(std::unique_ptr<VirtioDevice> device, const GuestMemory& memory,
                    MsiController& msi, IoEventRegistry* ioevents, std::string name = {},
                    WorkerPace pace = {});
    ~VirtioPciDevice() override;
    VirtioPciDevice(const VirtioPciDevice&) = delete;
    VirtioPciDevice& operator=(const VirtioPciDevice&) = delete;

    // PciDevice.
    void config_read(uint32_t offset, std::span<uint8_t> data) override;
    void config_write(uint32_t offset, std::span<const uint8_t> data) override;
    std::vector<PciBar> bars() const override;
    void bar_read(uint8_t bar, uint64_t offset, std::span<uint8_t> data) override;
    void bar_write(uint8_t bar, uint64_t offset, std::span<const uint8_t> data) override;
    void bar_moved(uint8_t bar, std::optional<uint64_t> address) override;

    // device_status as the driver reads it (with DEVICE_NEEDS_RESET).
    uint8_t device_status() const;

    // The guest's notifications (kicks) the worker has taken, over the
    // device's life: none while it reads the rings itself, none for queues
    // vhost serves (the kernel takes those).
    uint64_t notifications() const { return notifications_.load(std::memory_order_relaxed); }

private:
    struct QueueSetup {
        uint16_t size = 0;
        bool enabled = false;
        uint64_t desc = 0;
        uint64_t driver = 0;
        uint64_t device = 0;
        std::unique_ptr<IoEventBinding> binding;
    };

    // The device's queue count, after checking it fits the layout; throws vireo::Error.
    static uint16_t checked_queue_count(const VirtioDevice& device, const std::string& name);

    // VirtioInterrupt, for the device on its worker thread.
    void signal_used(uint16_t queue) override;
    void signal_config_change() override;
    // From the device's activate(), so with mutex_ held.
    void route_used_signals(uint16_t queue, std::function<void(int fd)> route) override;
    // The irqfd of `queue`'s vector while it may fire, else -1.
    int direct_fd(uint16_t queue) const;
    // After a write that may mask, unmask or move a vector: tells each routed
    // queue's device where its signals now go, if that changed.
    void update_used_signal_routes();

    void bar_read_locked(uint64_t offset, std::span<uint8_t> data);
    void bar_write_locked(uint64_t offset, std::span<const uint8_t> data);
    void common_read(uint64_t offset, std::span<uint8_t> data);
    void common_write(uint64_t offset, std::span<const uint8_t> data);
    // The VIRTIO_PCI_CAP_PCI_CFG window: a BAR access described in config space.
    void cfg_window_access(bool is_write);
    void write_status(uint8_t value);
    void activate();
    void reset();
    void bind_notify(uint16_t queue);
    uint16_t checked_vector(uint64_t value) const;
    // On the worker thread, after the device ran: a faulted queue breaks the device.
    void check_queues();
    void mark_broken(uint16_t queue, const VirtqueueFault& fault);
    // The worker's view of `queues` while it polls: notifications off, the
    // rings looked at directly.
    DeviceWorker::RingPoll ring_poll(std::vector<uint16_t> queues);

    std::unique_ptr<VirtioDevice> device_;
    const GuestMemory& memory_;
    IoEventRegistry* ioevents_;
    std::string name_;
    WorkerPace pace_;
    uint16_t queue_count_;
    uint64_t offered_features_;
    RateLimitedLog log_;  // guest mistakes
    Msix msix_;

    // Read by the worker thread and vCPU threads without the lock.
    std::vector<EventFd> notify_;  // one per queue, for the device's lifetime
    std::unique_ptr<std::atomic<uint16_t>[]> queue_vectors_;
    std::atomic<uint16_t> config_vector_{0xffff};
    std::atomic<uint8_t> isr_{0};
    std::atomic<uint8_t> config_generation_{0};
    std::atomic<bool> needs_reset_{false};
    std::atomic<uint64_t> notifications_{0};

    // The rest is guarded by mutex_; the worker thread never takes it, so
    // reset() may join the worker while holding it.
    mutable std::mutex mutex_;
    PciConfigSpace config_;
    uint8_t cfg_cap_ = 0;  // offset of the VIRTIO_PCI_CAP_PCI_CFG capability
    std::optional<uint64_t> bar_address_;
    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint64_t driver_features_ = 0;
    uint8_t status_ = 0;
    uint16_t queue_select_ = 0;
    std::vector<QueueSetup> setup_;
    bool active_ = false;
    std::vector<Virtqueue> queues_;
    struct UsedSignalRoute {
        std::function<void(int fd)> route;
        int fd = -1;  // as last told
    };
    std::map<uint16_t, UsedSignalRoute> used_signal_routes_;  // by queue, while active
    std::unique_ptr<DeviceWorker> worker_;                    // last: stopped first
};

}  // namespace vireo
