/* What the loader told us, normalised across the PVH and Linux boot paths. */
#pragma once

#include <stdint.h>

#include "boot_params.h"

#define MEMMAP_RAM 1
#define MEMMAP_RESERVED 2
#define MEMMAP_ACPI 3
#define MEMMAP_NVS 4
#define MEMMAP_UNUSABLE 5
#define MEMMAP_MAX 128
#define CMDLINE_MAX 4096

struct memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

struct boot_info {
    int kind;                  /* BOOT_KIND_PVH or BOOT_KIND_LINUX */
    char cmdline[CMDLINE_MAX]; /* copy; "" when the loader gave none */
    uint32_t memmap_entries;   /* as given (not sorted or merged) */
    struct memmap_entry memmap[MEMMAP_MAX];
    uint64_t rsdp;        /* from start_info / boot_params; 0 if not given */
    uint64_t initrd_addr; /* PVH module 0 or the Linux ramdisk; 0 if none */
    uint64_t initrd_size;
    const struct hvm_start_info* start_info; /* raw, PVH only */
    const struct boot_params* boot_params;   /* raw, Linux only */
};

extern struct boot_info boot_info;

/* Ring 3, once at start-up (before anything reuses low memory). */
void boot_info_init(int kind, uint64_t raw);

const char* boot_kind_name(void);
/* Total bytes of type-RAM entries. */
uint64_t boot_ram_bytes(void);
