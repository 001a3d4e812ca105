#include "devices/legacy/acpi_pm_timer.h"

#include <algorithm>

namespace vireo {

namespace {

constexpr int64_t kNanosecondsPerSecond = 1'000'000'000;

timespec now() {
    timespec time{};
    ::clock_gettime(CLOCK_MONOTONIC, &time);
    return time;
}

}  // namespace

AcpiPmTimer::AcpiPmTimer() : start_(now()) {}

uint32_t AcpiPmTimer::ticks_after(const timespec& elapsed) {
    // Whole seconds and the nanoseconds apart, so the product cannot overflow.
    uint64_t ticks = static_cast<uint64_t>(elapsed.tv_sec) * kFrequencyHz +
                     static_cast<uint64_t>(elapsed.tv_nsec) * kFrequencyHz /
                         static_cast<uint64_t>(kNanosecondsPerSecond);
    return static_cast<uint32_t>(ticks);  // the counter wraps at 32 bits
}

void AcpiPmTimer::read(uint64_t offset, std::span<uint8_t> data) {
    timespec time = now();
    timespec elapsed{time.tv_sec - start_.tv_sec, time.tv_nsec - start_.tv_nsec};
    if (elapsed.tv_nsec < 0) {
        elapsed.tv_sec -= 1;
        elapsed.tv_nsec += kNanosecondsPerSecond;
    }
    uint32_t value = ticks_after(elapsed);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        data[i] = at < kSize ? static_cast<uint8_t>(value >> (8 * at)) : 0xff;
    }
}

}  // namespace vireo
