#pragma once

#include <cstddef>
#include <cstdint>

// The PVH boot ABI (Xen public/arch-x86/hvm/start_info.h, version 1): what a
// PVH kernel finds at %ebx on entry.
namespace vireo::x86 {

inline constexpr uint32_t kHvmStartMagic = 0x336ec578;  // "xEn3" with the 0x80 bit of "E" set
inline constexpr uint32_t kHvmStartInfoVersion = 1;
inline constexpr uint32_t kXenElfNotePhys32Entry = 18;  // XEN_ELFNOTE_PHYS32_ENTRY
inline constexpr uint32_t kHvmMemmapTypeRam = 1;
inline constexpr uint32_t kHvmMemmapTypeReserved = 2;

struct HvmStartInfo {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;  // version 1 and newer
    uint32_t memmap_entries;
    uint32_t reserved;
};

struct HvmModlistEntry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};

struct HvmMemmapTableEntry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};

static_assert(offsetof(HvmStartInfo, nr_modules) == 12);
static_assert(offsetof(HvmStartInfo, modlist_paddr) == 16);
static_assert(offsetof(HvmStartInfo, cmdline_paddr) == 24);
static_assert(offsetof(HvmStartInfo, rsdp_paddr) == 32);
static_assert(offsetof(HvmStartInfo, memmap_paddr) == 40);
static_assert(offsetof(HvmStartInfo, memmap_entries) == 48);
static_assert(sizeof(HvmStartInfo) == 56);
static_assert(offsetof(HvmModlistEntry, cmdline_paddr) == 16);
static_assert(sizeof(HvmModlistEntry) == 32);
static_assert(offsetof(HvmMemmapTableEntry, type) == 16);
static_assert(sizeof(HvmMemmapTableEntry) == 24);

}  // namespace vireo::x86
