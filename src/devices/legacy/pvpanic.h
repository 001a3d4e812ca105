#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "base/rate_limited_log.h"
#include "devices/bus_device.h"

namespace vireo {

// QEMU's pvpanic device at x86::kPvPanicPort (one byte; ACPI _HID "QEMU0001"),
// which Linux's pvpanic driver writes from its panic notifier: the VMM learns
// that the guest kernel panicked before the guest reboots or hangs, and says so.
// A read returns the events the device supports; a write reports events:
//   bit 0  PANICKED      the guest kernel panicked: on_panic is called
//   bit 1  CRASH_LOADED  a crash kernel took over (kdump): logged, the VM runs on
class PvPanic final : public BusDevice {
public:
    // Called on a vCPU thread.
    using PanicCallback = std::function<void()>;

    static constexpr uint64_t kSize = 1;
    static constexpr uint8_t kPanicked = 1 << 0;
    static constexpr uint8_t kCrashLoaded = 1 << 1;

    // Throws vireo::Error if on_panic is empty.
    explicit PvPanic(PanicCallback on_panic);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    const PanicCallback on_panic_;
    RateLimitedLog log_{"pvpanic"};
};

}  // namespace vireo
