#include "arch/x86/boot_cpu_state.h"

#include <array>

#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo::x86 {

namespace {

constexpr uint64_t kPageSize = 0x1000;
constexpr uint64_t kHugePageSize = 2ull << 20;
constexpr uint64_t kPtePresent = 1 << 0;
constexpr uint64_t kPteWritable = 1 << 1;
constexpr uint64_t kPteHuge = 1 << 7;
constexpr uint64_t kIdentityMappedGiB = 4;

constexpr uint8_t kTypeCodeExecReadAccessed = 0xb;
constexpr uint8_t kTypeDataReadWriteAccessed = 0x3;
constexpr uint8_t kTypeTssBusy = 0xb;

Segment flat_code(bool long_mode) {
    return {.base = 0,
            .limit = 0xffffffff,
            .selector = kBootCodeSelector,
            .type = kTypeCodeExecReadAccessed,
            .present = true,
            .dpl = 0,
            .db = !long_mode,  // must be clear when L is set
            .s = true,
            .l = long_mode,
            .g = true};
}

Segment flat_data() {
    return {.base = 0,
            .limit = 0xffffffff,
            .selector = kBootDataSelector,
            .type = kTypeDataReadWriteAccessed,
            .present = true,
            .dpl = 0,
            .db = true,
            .s = true,
            .l = false,
            .g = true};
}

Segment boot_tss() {
    return {.base = 0,
            .limit = kBootTssLimit,
            .selector = kBootTssSelector,
            .type = kTypeTssBusy,
            .present = true,
            .dpl = 0,
            .db = false,
            .s = false,
            .l = false,
            .g = false};
}

// The 8-byte descriptor for a segment (Intel SDM vol. 3, 3.4.5).
uint64_t descriptor(const Segment& segment) {
    uint64_t limit = segment.g ? segment.limit >> 12 : segment.limit;
    uint64_t base = segment.base & 0xffffffff;
    return (limit & 0xffff) | ((base & 0xffffff) << 16) | (uint64_t{segment.type} << 40) |
           (uint64_t{segment.s} << 44) | (uint64_t{segment.dpl} << 45) |
           (uint64_t{segment.present} << 47) | (((limit >> 16) & 0xf) << 48) |
           (uint64_t{segment.l} << 53) | (uint64_t{segment.db} << 54) |
           (uint64_t{segment.g} << 55) | ((base >> 24) << 56);
}

void write_or_fail(const GuestMemory& memory, uint64_t address, const void* data, uint64_t size,
                   const char* what) {
    if (!memory.write(address, data, size)) {
        fail("guest RAM does not hold the boot {} at {:#x} ({} bytes)", what, address, size);
    }
}

BootCpuState flat_state(const GuestMemory& memory, uint64_t entry, bool long_mode) {
    BootCpuState state;
    state.rip = entry;
    state.rsp = kBootStackTop;
    state.cs = flat_code(long_mode);
    state.ds = state.es = state.fs = state.gs = state.ss = flat_data();
    state.tr = boot_tss();
    state.ldt = {};  // not present: KVM marks it unusable
    state.gdt = {kGdtAddress, kBootGdtLimit};
    state.idt = {0, 0};

    std::array<uint64_t, (kBootGdtLimit + 1) / 8> gdt{};
    gdt[kBootCodeSelector / 8] = descriptor(state.cs);
    gdt[kBootDataSelector / 8] = descriptor(state.ds);
    gdt[kBootTssSelector / 8] = descriptor(state.tr);
    // gdt[kBootTssSelector / 8 + 1] stays 0: base bits 63:32 of a long-mode TSS.
    write_or_fail(memory, kGdtAddress, gdt.data(), sizeof(gdt), "GDT");
    return state;
}

}  // namespace

BootCpuState long_mode_boot_state(const GuestMemory& memory, uint64_t entry) {
    // PML4 -> one PDPT -> four page directories of 512 x 2 MiB pages each.
    constexpr uint64_t pml4 = kPageTablesAddress;
    constexpr uint64_t pdpt = pml4 + kPageSize;
    constexpr uint64_t first_pd = pdpt + kPageSize;
    std::array<uint64_t, 512> table{};
    table[0] = pdpt | kPtePresent | kPteWritable;
    write_or_fail(memory, pml4, table.data(), sizeof(table), "PML4");

    table = {};
    for (uint64_t i = 0; i < kIdentityMappedGiB; ++i) {
        table[i] = (first_pd + i * kPageSize) | kPtePresent | kPteWritable;
    }
    write_or_fail(memory, pdpt, table.data(), sizeof(table), "PDPT");

    for (uint64_t i = 0; i < kIdentityMappedGiB; ++i) {
        for (uint64_t j = 0; j < table.size(); ++j) {
            uint64_t address = (i * table.size() + j) * kHugePageSize;
            table[j] = address | kPtePresent | kPteWritable | kPteHuge;
        }
        write_or_fail(memory, first_pd + i * kPageSize, table.data(), sizeof(table),
                      "page directory");
    }

    BootCpuState state = flat_state(memory, entry, /*long_mode=*/true);
    state.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
    state.cr3 = pml4;
    state.cr4 = kCr4Pae;
    state.efer = kEferLme | kEferLma;
    return state;
}

BootCpuState protected_mode_boot_state(const GuestMemory& memory, uint64_t entry) {
    BootCpuState state = flat_state(memory, entry, /*long_mode=*/false);
    state.cr0 = kCr0Pe | kCr0Et;
    return state;
}

}  // namespace vireo::x86
