#pragma once

#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

// The guest-physical map of a Vireo x86 machine. One place, so that the
// loaders, ACPI tables, e820 map and device wiring agree.
//
//   0x0000_0000  RAM (low): boot structures below 1 MiB, kernel from 1 MiB
//   0x000A_0000  legacy hole (reported reserved in e820; RSDP at 0xE0000)
//   0xC000_0000  PCI MMIO window (BARs), 512 MiB
//   0xE000_0000  PCI ECAM (MCFG), bus 0 only: 1 MiB
//   0xFEC0_0000  IOAPIC
//   0xFEE0_0000  LAPIC
//   4 GiB        RAM (high): whatever did not fit below the PCI hole
namespace vireo::x86 {

inline constexpr uint64_t kLowRamEnd = 0xC000'0000;  // start of the PCI hole
inline constexpr uint64_t kHighRamStart = 0x1'0000'0000;

inline constexpr uint64_t kPciMmioStart = 0xC000'0000;
inline constexpr uint64_t kPciMmioSize = 0x2000'0000;
inline constexpr uint64_t kPciEcamStart = 0xE000'0000;
inline constexpr uint64_t kPciEcamSize = 0x10'0000;  // bus 0: 32 devices x 8 functions x 4 KiB
inline constexpr uint64_t kIoApicStart = 0xFEC0'0000;
inline constexpr uint64_t kLapicStart = 0xFEE0'0000;

// Boot structures in low memory (all below 640 KiB, in usable RAM).
inline constexpr uint64_t kGdtAddress = 0x500;
inline constexpr uint64_t kPvhStartInfoAddress = 0x6000;  // hvm_start_info + memmap + modules
inline constexpr uint64_t kZeroPageAddress = 0x7000;      // Linux boot_params
inline constexpr uint64_t kPageTablesAddress = 0x9000;    // PML4, PDPT, 4 PDs: identity 4 GiB
inline constexpr uint64_t kBootStackTop = 0x8ff0;
inline constexpr uint64_t kCmdlineAddress = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 0x10000;
inline constexpr uint64_t kEbdaStart = 0x9FC00;
inline constexpr uint64_t kLegacyHoleStart = 0xA0000;
inline constexpr uint64_t kLegacyHoleEnd = 0x100000;
inline constexpr uint64_t kAcpiTablesAddress = 0xE0000;  // RSDP first, legacy-scannable
inline constexpr uint64_t kAcpiTablesSize = 0x20000;
inline constexpr uint64_t kKernelLoadAddress = 0x100000;  // 1 MiB

// vCPUs a machine may have: one socket of up to 64 cores, one thread each
// (CPUID leaf 4 counts at most 64 cores; the MADT needs only xAPIC entries).
inline constexpr uint32_t kMaxVcpus = 64;

// Port I/O map.
inline constexpr uint16_t kCom1Port = 0x3f8;
inline constexpr uint16_t kI8042Port = 0x60;              // data; command/status at 0x64
inline constexpr uint16_t kRtcPort = 0x70;                // index; data at 0x71
inline constexpr uint16_t kDebugExitPort = 0xf4;          // QEMU isa-debug-exit compatible
inline constexpr uint16_t kPvPanicPort = 0x505;           // QEMU pvpanic compatible
inline constexpr uint16_t kPciConfigAddressPort = 0xcf8;  // mechanism #1: 0xcf8 and 0xcfc
inline constexpr uint16_t kAcpiPmPort = 0x600;  // PM1a event (0x600, 4) and control (0x604, 2)
inline constexpr uint16_t kAcpiPm1aEventPort = 0x600;
inline constexpr uint16_t kAcpiPm1aControlPort = 0x604;
inline constexpr uint16_t kAcpiPmTimerPort = 0x608;  // 32-bit, 3.579545 MHz
inline constexpr uint8_t kAcpiS5SleepType = 5;       // \_S5 SLP_TYP in our DSDT

// The guest-physical RAM ranges for `ram_size` bytes of guest RAM.
inline std::vector<GuestMemory::Range> ram_ranges(uint64_t ram_size) {
    std::vector<GuestMemory::Range> ranges;
    uint64_t low = ram_size < kLowRamEnd ? ram_size : kLowRamEnd;
    ranges.push_back({0, low});
    if (ram_size > low) {
        ranges.push_back({kHighRamStart, ram_size - low});
    }
    return ranges;
}

}  // namespace vireo::x86
