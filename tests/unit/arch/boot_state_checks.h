#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

#include "arch/x86/boot_cpu_state.h"
#include "arch/x86/layout.h"
#include "memory/guest_memory.h"

// Independent readers of the boot structures in guest memory, for the tests.
namespace vireo::x86::boot_test {

// Decodes a GDT entry the way the CPU would load it into a segment register.
inline Segment decode(uint64_t d, uint16_t selector) {
    Segment s;
    s.selector = selector;
    uint32_t raw_limit = static_cast<uint32_t>((d & 0xffff) | (((d >> 48) & 0xf) << 16));
    s.g = (d >> 55) & 1;
    s.limit = s.g ? (raw_limit << 12) | 0xfff : raw_limit;
    s.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
    s.type = (d >> 40) & 0xf;
    s.s = (d >> 44) & 1;
    s.dpl = (d >> 45) & 3;
    s.present = (d >> 47) & 1;
    s.l = (d >> 53) & 1;
    s.db = (d >> 54) & 1;
    return s;
}

inline void expect_same(const Segment& a, const Segment& b, const char* what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(a.base, b.base);
    EXPECT_EQ(a.limit, b.limit);
    EXPECT_EQ(a.selector, b.selector);
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.present, b.present);
    EXPECT_EQ(a.dpl, b.dpl);
    EXPECT_EQ(a.db, b.db);
    EXPECT_EQ(a.s, b.s);
    EXPECT_EQ(a.l, b.l);
    EXPECT_EQ(a.g, b.g);
}

// The GDT in guest memory describes exactly the segments the state loads.
inline void expect_gdt_matches(const GuestMemory& memory, const BootCpuState& state) {
    ASSERT_EQ(state.gdt.base, kGdtAddress);
    ASSERT_EQ(state.gdt.limit, 6 * 8 - 1);
    auto entry = [&](uint16_t selector) {
        return *memory.read_object<uint64_t>(kGdtAddress + selector);
    };
    EXPECT_EQ(entry(0), 0u);
    expect_same(decode(entry(state.cs.selector), state.cs.selector), state.cs, "cs");
    for (const Segment* s : {&state.ds, &state.es, &state.fs, &state.gs, &state.ss}) {
        expect_same(decode(entry(s->selector), s->selector), *s, "data segment");
    }
    expect_same(decode(entry(state.tr.selector), state.tr.selector), state.tr, "tr");
    EXPECT_EQ(entry(state.tr.selector + 8), 0u) << "upper half of a long-mode TSS descriptor";
}

// Walks the 4-level tables as the MMU does, for 2 MiB pages.
inline std::optional<uint64_t> translate(const GuestMemory& memory, uint64_t cr3, uint64_t va) {
    uint64_t pml4e = *memory.read_object<uint64_t>(cr3 + ((va >> 39) & 511) * 8);
    if (!(pml4e & 1)) {
        return std::nullopt;
    }
    uint64_t pdpte = *memory.read_object<uint64_t>((pml4e & ~0xfffull) + ((va >> 30) & 511) * 8);
    if (!(pdpte & 1) || (pdpte & 0x80)) {
        return std::nullopt;
    }
    uint64_t pde = *memory.read_object<uint64_t>((pdpte & ~0xfffull) + ((va >> 21) & 511) * 8);
    if (!(pde & 1) || !(pde & 0x80) || !(pde & 2)) {
        return std::nullopt;
    }
    return (pde & ~0x1fffffull) | (va & 0x1fffff);
}

}  // namespace vireo::x86::boot_test
