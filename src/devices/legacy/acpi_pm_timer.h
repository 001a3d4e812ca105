#pragma once

#include <cstdint>
#include <ctime>
#include <span>

#include "devices/bus_device.h"

namespace vireo {

// The ACPI power-management timer (ACPI 6.5, 4.8.3.3): a free-running 32-bit
// counter at 3.579545 MHz, read-only, at x86::kAcpiPmTimerPort. It counts from
// the host's monotonic clock, so it keeps time however the vCPUs are
// scheduled; Linux uses it to check its TSC calibration and as a clocksource
// of last resort. The FADT sets TMR_VAL_EXT (32 bits) and no timer interrupt
// is raised (TMR_EN stays clear, as Linux leaves it).
class AcpiPmTimer final : public BusDevice {
public:
    static constexpr uint64_t kSize = 4;
    static constexpr uint64_t kFrequencyHz = 3'579'545;

    AcpiPmTimer();

    // Any width; bytes beyond the register read 0xff.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    // The register is read-only: writes are ignored.
    void write(uint64_t, std::span<const uint8_t>) override {}

    // The counter's value `elapsed` after the timer started (exposed for tests).
    static uint32_t ticks_after(const timespec& elapsed);

private:
    timespec start_{};
};

}  // namespace vireo
