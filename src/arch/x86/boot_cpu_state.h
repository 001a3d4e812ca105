#pragma once

#include <cstdint>

#include "memory/guest_memory.h"

namespace vireo::x86 {

// A segment register as the CPU caches it (the hidden part included).
struct Segment {
    uint64_t base = 0;
    uint32_t limit = 0;  // in bytes, as KVM takes it (0xffffffff for a 4 GiB flat segment)
    uint16_t selector = 0;
    uint8_t type = 0;  // 4-bit type field of the descriptor
    bool present = false;
    uint8_t dpl = 0;
    bool db = false;  // default operation size 32-bit
    bool s = false;   // code/data (not system)
    bool l = false;   // 64-bit code
    bool g = false;   // 4 KiB granularity
};

struct DescriptorTable {
    uint64_t base = 0;
    uint16_t limit = 0;
};

// The boot vCPU's state at a kernel's entry point, as a loader describes it.
// Independent of KVM: src/kvm applies it with KVM_SET_REGS/SREGS.
struct BootCpuState {
    uint64_t rip = 0;
    uint64_t rsp = 0;
    uint64_t rsi = 0;  // Linux 64-bit protocol: boot_params
    uint64_t rbx = 0;  // PVH: hvm_start_info
    uint64_t rflags = 0x2;
    uint64_t cr0 = 0;
    uint64_t cr3 = 0;
    uint64_t cr4 = 0;
    uint64_t efer = 0;
    Segment cs, ds, es, fs, gs, ss, tr, ldt;
    DescriptorTable gdt, idt;
};

// The boot GDT at kGdtAddress: null, null, __BOOT_CS (0x10), __BOOT_DS (0x18)
// as boot.rst requires, then a TSS (16 bytes, the long-mode size), because
// VMX refuses to enter a guest without a usable TR.
inline constexpr uint16_t kBootCodeSelector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;
inline constexpr uint16_t kBootTssSelector = 0x20;
inline constexpr uint16_t kBootGdtLimit = 6 * 8 - 1;
inline constexpr uint32_t kBootTssLimit = 0x67;

inline constexpr uint64_t kCr0Pe = 1 << 0;
inline constexpr uint64_t kCr0Et = 1 << 4;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4Pae = 1 << 5;
inline constexpr uint64_t kEferLme = 1 << 8;
inline constexpr uint64_t kEferLma = 1 << 10;

// 64-bit entry (Linux 64-bit boot protocol): writes the GDT and page tables
// identity-mapping the first 4 GiB with 2 MiB pages (PML4 at
// kPageTablesAddress, then the PDPT and four page directories), and returns
// long mode with paging on, flat 64-bit CS and flat data segments, interrupts
// off, rip = entry, rsp = kBootStackTop. The caller sets rsi.
// Throws vireo::Error if guest RAM does not hold the structures.
BootCpuState long_mode_boot_state(const GuestMemory& memory, uint64_t entry);

// 32-bit entry (PVH): writes the GDT and returns protected mode with paging
// off, flat 32-bit code and data segments, a 32-bit busy TSS (base 0, limit
// 0x67), interrupts off, eip = entry. The caller sets rbx.
BootCpuState protected_mode_boot_state(const GuestMemory& memory, uint64_t entry);

}  // namespace vireo::x86
