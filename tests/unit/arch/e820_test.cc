#include "arch/x86/e820.h"

#include <gtest/gtest.h>

#include "arch/x86/boot_params.h"
#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo::x86 {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kGiB = 1ull << 30;

// The part common to every map: low RAM, EBDA/legacy hole, then RAM from 1 MiB.
std::vector<E820Entry> expected(uint64_t low_end) {
    return {
        {0, 0x9fc00, kE820Ram},
        {0x9fc00, 0x100000 - 0x9fc00, kE820Reserved},
        {0x100000, low_end - 0x100000, kE820Ram},
        {0xe0000000, 0x100000, kE820Reserved},
    };
}

TEST(E820, SmallGuestHasAllRamBelowThePciHole) {
    EXPECT_EQ(e820_map(256 * kMiB), expected(256 * kMiB));
}

TEST(E820, ThreeGiBFillsLowRamExactly) {
    EXPECT_EQ(e820_map(3 * kGiB), expected(3 * kGiB));
}

TEST(E820, FourGiBPutsTheLastGiBAbove4GiB) {
    std::vector<E820Entry> map = expected(3 * kGiB);
    map.push_back({4 * kGiB, 1 * kGiB, kE820Ram});
    EXPECT_EQ(e820_map(4 * kGiB), map);
}

TEST(E820, EightGiB) {
    std::vector<E820Entry> map = expected(3 * kGiB);
    map.push_back({4 * kGiB, 5 * kGiB, kE820Ram});
    EXPECT_EQ(e820_map(8 * kGiB), map);
}

TEST(E820, MatchesGuestRamRangesAndIsSorted) {
    for (uint64_t size : {64 * kMiB, 3 * kGiB, 5 * kGiB}) {
        std::vector<E820Entry> map = e820_map(size);
        uint64_t ram = 0;
        for (size_t i = 0; i < map.size(); ++i) {
            if (i > 0) {
                EXPECT_GE(map[i].address, map[i - 1].address + map[i - 1].size);
            }
            if (map[i].type == kE820Ram) {
                ram += map[i].size;
            }
        }
        // RAM in the e820 map plus the reserved EBDA/legacy part of it = all RAM.
        EXPECT_EQ(ram + (0x100000 - 0x9fc00), size) << size;
        // Merged, the entries other than the ECAM are exactly the guest RAM ranges.
        std::vector<GuestMemory::Range> merged;
        for (const E820Entry& e : map) {
            if (e.address == kPciEcamStart) {
                continue;
            }
            if (!merged.empty() && merged.back().guest_address + merged.back().size == e.address) {
                merged.back().size += e.size;
            } else {
                merged.push_back({e.address, e.size});
            }
        }
        std::vector<GuestMemory::Range> ranges = ram_ranges(size);
        ASSERT_EQ(merged.size(), ranges.size()) << size;
        for (size_t i = 0; i < ranges.size(); ++i) {
            EXPECT_EQ(merged[i].guest_address, ranges[i].guest_address);
            EXPECT_EQ(merged[i].size, ranges[i].size);
        }
    }
}

TEST(E820, RefusesRamThatLeavesNothingAbove1MiB) {
    EXPECT_THROW(e820_map(1 * kMiB), Error);
}

}  // namespace
}  // namespace vireo::x86
