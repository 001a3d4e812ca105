#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "base/rate_limited_log.h"
#include "devices/bus_device.h"

namespace vireo {

// QEMU's isa-debug-exit at x86::kDebugExitPort (4 bytes): test guests end the VM
// by writing a value v, which the VMM turns into the exit status (v << 1) | 1.
// Any write inside the range counts, as in QEMU (the value is the written bytes,
// little endian); reads return 0.
class DebugExit final : public BusDevice {
public:
    // Called on a vCPU thread, possibly from several at once.
    using ExitCallback = std::function<void(uint32_t value)>;

    static constexpr uint64_t kSize = 4;

    // Throws vireo::Error if on_exit is empty.
    explicit DebugExit(ExitCallback on_exit);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    const ExitCallback on_exit_;
    RateLimitedLog log_{"debug-exit"};
};

}  // namespace vireo
