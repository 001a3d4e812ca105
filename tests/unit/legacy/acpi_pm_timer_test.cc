#include "devices/legacy/acpi_pm_timer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "port_io.h"

namespace vireo {
namespace {

TEST(AcpiPmTimer, CountsAt3579545HzFromTheStart) {
    EXPECT_EQ(AcpiPmTimer::ticks_after({0, 0}), 0u);
    EXPECT_EQ(AcpiPmTimer::ticks_after({1, 0}), 3'579'545u);
    EXPECT_EQ(AcpiPmTimer::ticks_after({0, 500'000'000}), 1'789'772u);
    EXPECT_EQ(AcpiPmTimer::ticks_after({2, 250'000'000}), 2 * 3'579'545u + 894'886u);
}

TEST(AcpiPmTimer, WrapsAt32BitsWithoutOverflowingOnTheWay) {
    // 2^32 ticks take 1199.86 s; after ten days the counter is still exact modulo 2^32.
    constexpr int64_t kTenDays = 10 * 86'400;
    uint64_t exact = static_cast<uint64_t>(kTenDays) * 3'579'545u + 3'579'545u / 10;
    EXPECT_EQ(AcpiPmTimer::ticks_after({kTenDays, 100'000'000}), static_cast<uint32_t>(exact));
}

TEST(AcpiPmTimer, ReadsMoveForwardWithTheHostClock) {
    AcpiPmTimer timer;
    uint32_t first = static_cast<uint32_t>(in_wide(timer, 0, 4));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint32_t second = static_cast<uint32_t>(in_wide(timer, 0, 4));
    // At least 20 ms worth (71591 ticks); a loaded machine may add more.
    EXPECT_GE(second - first, 71'591u);
    EXPECT_LT(second - first, 3'579'545u * 5) << "not more than 5 s in a 20 ms sleep";
}

TEST(AcpiPmTimer, NarrowReadsTakeTheirBytesAndWritesAreIgnored) {
    AcpiPmTimer timer;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    uint64_t low = in_wide(timer, 0, 2);
    EXPECT_LE(low, 0xffffu);
    out_wide(timer, 0, 4, 0);
    EXPECT_GT(in_wide(timer, 0, 4), 0u) << "a write did not reset the counter";
    EXPECT_EQ(in_wide(timer, 2, 4) >> 16, 0xffffu) << "bytes past the register read 0xff";
}

}  // namespace
}  // namespace vireo
