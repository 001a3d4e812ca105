#include "memory/guest_memory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "base/error.h"

namespace vireo {
namespace {

constexpr uint64_t kMiB = 1 << 20;

GuestMemory two_regions() {
    // 4 MiB low, a hole, 2 MiB high: the shape of x86's PCI hole in miniature.
    return GuestMemory::create({{0, 4 * kMiB}, {16 * kMiB, 2 * kMiB}});
}

TEST(GuestMemory, ReadsBackWhatWasWrittenInEachRegion) {
    GuestMemory memory = two_regions();
    ASSERT_TRUE(memory.write_object<uint64_t>(0x1000, 0x1122334455667788));
    ASSERT_TRUE(memory.write_object<uint32_t>(16 * kMiB + 8, 0xdeadbeef));
    EXPECT_EQ(memory.read_object<uint64_t>(0x1000), 0x1122334455667788u);
    EXPECT_EQ(memory.read_object<uint32_t>(16 * kMiB + 8), 0xdeadbeefu);
    EXPECT_EQ(memory.total_size(), 6 * kMiB);
}

TEST(GuestMemory, RefusesRangesOutsideRam) {
    GuestMemory memory = two_regions();
    EXPECT_FALSE(memory.contains(4 * kMiB, 1));      // in the hole
    EXPECT_FALSE(memory.contains(4 * kMiB - 4, 8));  // straddles the end of a region
    EXPECT_FALSE(memory.contains(18 * kMiB, 1));     // beyond the end
    EXPECT_FALSE(memory.span(std::numeric_limits<uint64_t>::max() - 2, 8).has_value());
    EXPECT_FALSE(memory.span(0x1000, std::numeric_limits<uint64_t>::max()).has_value());
    EXPECT_FALSE(memory.read_object<uint64_t>(18 * kMiB - 4).has_value());
    EXPECT_FALSE(memory.write_object<uint64_t>(4 * kMiB, 0));
    EXPECT_TRUE(memory.contains(4 * kMiB - 8, 8));
}

TEST(GuestMemory, ZeroLengthAccessesInsideRamSucceed) {
    GuestMemory memory = two_regions();
    EXPECT_TRUE(memory.write(0x1000, nullptr, 0));
    EXPECT_TRUE(memory.read(0x1000, nullptr, 0));
}

TEST(GuestMemory, ZeroingGivesWholePagesBack) {
    GuestMemory memory = GuestMemory::create({{0, 64 * kMiB}});
    auto bytes = *memory.span(0, 64 * kMiB);
    std::fill(bytes.begin(), bytes.end(), 0xaa);
    uint64_t before = memory.resident_bytes();
    // Unaligned at both ends: the partial pages are written, the rest punched out.
    ASSERT_TRUE(memory.zero(100, 32 * kMiB));
    EXPECT_EQ(bytes[99], 0xaa);
    EXPECT_EQ(bytes[100], 0);
    EXPECT_EQ(bytes[4096], 0);
    EXPECT_EQ(bytes[32 * kMiB + 99], 0);
    EXPECT_EQ(bytes[32 * kMiB + 100], 0xaa);
    EXPECT_LT(memory.resident_bytes(), before - 30 * kMiB);
    // Small ranges inside one page, and ranges outside RAM.
    ASSERT_TRUE(memory.zero(40 * kMiB + 8, 16));
    EXPECT_EQ(bytes[40 * kMiB + 7], 0xaa);
    EXPECT_EQ(bytes[40 * kMiB + 8], 0);
    EXPECT_EQ(bytes[40 * kMiB + 24], 0xaa);
    EXPECT_FALSE(memory.zero(63 * kMiB, 2 * kMiB));
}

TEST(GuestMemory, LinesUpWithHostHugePages) {
    GuestMemory memory = two_regions();
    for (const GuestMemory::Region& region : memory.regions()) {
        EXPECT_EQ(reinterpret_cast<uintptr_t>(region.host) % (2 * kMiB),
                  region.guest_address % (2 * kMiB));
    }
}

TEST(GuestMemory, IsAllocatedLazily) {
    GuestMemory memory = GuestMemory::create({{0, 1024 * kMiB}});
    EXPECT_LT(memory.resident_bytes(), 4 * kMiB);
    ASSERT_TRUE(memory.write_object<uint8_t>(512 * kMiB, 1));
    EXPECT_GT(memory.resident_bytes(), 0u);
    EXPECT_LE(memory.resident_bytes(), 4 * kMiB);
}

TEST(GuestMemory, RefusesBadLayouts) {
    EXPECT_THROW(GuestMemory::create({}), Error);
    EXPECT_THROW(GuestMemory::create({{0, 123}}), Error);
    EXPECT_THROW(GuestMemory::create({{0, 8 * kMiB}, {4 * kMiB, 4 * kMiB}}), Error);
}

}  // namespace
}  // namespace vireo
