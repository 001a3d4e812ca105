#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <functional>
#include <mutex>
#include <span>

#include "base/rate_limited_log.h"
#include "devices/bus_device.h"

namespace vireo {

// The MC146818 real-time clock and its 128 bytes of CMOS RAM, at x86::kRtcPort
// (index; bit 7, the NMI mask, is ignored) and x86::kRtcPort + 1 (data). The index
// port reads 0xff (it is write-only on PCs). A wider access is split into byte
// accesses (outw to the index port writes index and data at once, as on ISA).
//
// The time registers (0x00-0x09, and the century at 0x32) are computed from the
// host clock (UTC) at each read, in the format register B selects (BCD or binary,
// 12- or 24-hour). A guest that sets the clock moves its own offset from the host
// clock. Simplifications: update-in-progress (register A bit 7) never reads set,
// so readers must compare two reads as Linux does; no alarm, periodic or update
// interrupt is ever raised (register C reads 0), so the device has no IRQ line.
//
// At construction the CMOS holds what firmware reads: base, extended and high
// memory sizes and the CPU count (see cmos_rtc.cc).
class CmosRtc final : public BusDevice {
public:
    using Clock = std::function<std::time_t()>;

    static constexpr uint64_t kSize = 2;

    // Throws vireo::Error if cpu_count is not 1..256 or clock is empty.
    CmosRtc(
        uint64_t ram_size, uint32_t cpu_count, Clock clock = [] { return std::time(nullptr); });

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    uint8_t read_register(uint8_t index);
    void write_register(uint8_t index, uint8_t value);
    std::tm guest_time() const;       // host time + offset, broken down
    uint8_t encode(int value) const;  // binary or BCD as register B says
    int decode(uint8_t value) const;
    uint8_t encode_hour(int hour) const;  // honours the 12-hour mode
    int decode_hour(uint8_t value) const;
    void set_memory_sizes(uint64_t ram_size, uint32_t cpu_count);

    const Clock clock_;
    RateLimitedLog log_{"rtc"};

    std::mutex mutex_;
    std::array<uint8_t, 128> cmos_{};
    uint8_t index_ = 0;       // NMI mask bit dropped: the RTC never raises an NMI
    std::time_t offset_ = 0;  // guest time minus host time, set when the guest writes the time
};

}  // namespace vireo
