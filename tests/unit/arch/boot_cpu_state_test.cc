#include "arch/x86/boot_cpu_state.h"

#include <gtest/gtest.h>

#include "arch/x86/layout.h"
#include "boot_state_checks.h"

namespace vireo::x86 {
namespace {

using boot_test::expect_gdt_matches;
using boot_test::translate;
constexpr uint64_t kMiB = 1 << 20;

TEST(BootCpuState, LongModeFollowsThe64BitBootProtocol) {
    GuestMemory memory = GuestMemory::create(ram_ranges(64 * kMiB));
    BootCpuState state = long_mode_boot_state(memory, 0x100200);
    EXPECT_EQ(state.rip, 0x100200u);
    EXPECT_EQ(state.rflags, 0x2u) << "interrupts off";
    EXPECT_EQ(state.cr0 & (kCr0Pe | kCr0Pg), kCr0Pe | kCr0Pg);
    EXPECT_EQ(state.cr4 & kCr4Pae, kCr4Pae);
    EXPECT_EQ(state.efer, kEferLme | kEferLma);
    EXPECT_EQ(state.cr3, kPageTablesAddress);
    EXPECT_EQ(state.cs.selector, 0x10) << "__BOOT_CS";
    EXPECT_TRUE(state.cs.l);
    EXPECT_FALSE(state.cs.db);
    EXPECT_EQ(state.cs.type & 0xa, 0xa) << "execute/read code";
    for (const Segment* s : {&state.ds, &state.es, &state.ss}) {
        EXPECT_EQ(s->selector, 0x18) << "__BOOT_DS";
        EXPECT_EQ(s->type & 0xa, 0x2) << "read/write data";
        EXPECT_EQ(s->base, 0u);
        EXPECT_EQ(s->limit, 0xffffffffu);
    }
    EXPECT_EQ(state.tr.type, 0xb);
    EXPECT_FALSE(state.ldt.present);
    expect_gdt_matches(memory, state);
}

TEST(BootCpuState, PageTablesIdentityMapTheFirst4GiB) {
    GuestMemory memory = GuestMemory::create(ram_ranges(64 * kMiB));
    BootCpuState state = long_mode_boot_state(memory, 0x100200);
    for (uint64_t va = 0; va < (4ull << 30); va += 2 * kMiB) {
        ASSERT_EQ(translate(memory, state.cr3, va + 0x1234), va + 0x1234) << std::hex << va;
    }
    EXPECT_EQ(translate(memory, state.cr3, 4ull << 30), std::nullopt);
    // The tables stay clear of the zero page, the command line and the kernel.
    EXPECT_GE(kPageTablesAddress, kZeroPageAddress + 0x1000);
    EXPECT_LE(kPageTablesAddress + 6 * 0x1000, kCmdlineAddress);
}

TEST(BootCpuState, ProtectedModeFollowsPvh) {
    GuestMemory memory = GuestMemory::create(ram_ranges(64 * kMiB));
    BootCpuState state = protected_mode_boot_state(memory, 0x1000a0);
    EXPECT_EQ(state.rip, 0x1000a0u);
    EXPECT_EQ(state.cr0, kCr0Pe | kCr0Et) << "paging off";
    EXPECT_EQ(state.cr4, 0u);
    EXPECT_EQ(state.efer, 0u);
    EXPECT_TRUE(state.cs.db);
    EXPECT_FALSE(state.cs.l);
    EXPECT_EQ(state.cs.limit, 0xffffffffu);
    EXPECT_EQ(state.ds.limit, 0xffffffffu);
    EXPECT_EQ(state.tr.base, 0u);
    EXPECT_EQ(state.tr.limit, 0x67u);
    EXPECT_EQ(state.tr.type, 0xb) << "busy 32-bit TSS";
    EXPECT_EQ(state.rflags, 0x2u);
    expect_gdt_matches(memory, state);
}

}  // namespace
}  // namespace vireo::x86
