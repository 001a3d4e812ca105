#include "boot_info.h"

#include "../boot/layout.h"
#include "string.h"

struct boot_info boot_info;

static void copy_cmdline(uint64_t paddr) {
    if (!paddr)
        return;
    const char* s = (const char*)paddr;
    size_t i = 0;
    for (; i + 1 < CMDLINE_MAX && s[i]; i++)
        boot_info.cmdline[i] = s[i];
    boot_info.cmdline[i] = 0;
}

static void add_memmap(uint64_t addr, uint64_t size, uint32_t type) {
    if (boot_info.memmap_entries >= MEMMAP_MAX)
        return;
    struct memmap_entry* e = &boot_info.memmap[boot_info.memmap_entries++];
    e->addr = addr;
    e->size = size;
    e->type = type;
}

static void init_pvh(const struct hvm_start_info* si) {
    boot_info.start_info = si;
    if (si->magic != PVH_START_MAGIC)
        return;
    copy_cmdline(si->cmdline_paddr);
    boot_info.rsdp = si->rsdp_paddr;
    if (si->nr_modules && si->modlist_paddr) {
        const struct hvm_modlist_entry* m = (const struct hvm_modlist_entry*)si->modlist_paddr;
        boot_info.initrd_addr = m[0].paddr;
        boot_info.initrd_size = m[0].size;
    }
    if (si->version >= 1 && si->memmap_paddr) {
        const struct hvm_memmap_table_entry* e =
            (const struct hvm_memmap_table_entry*)si->memmap_paddr;
        for (uint32_t i = 0; i < si->memmap_entries; i++)
            add_memmap(e[i].addr, e[i].size, e[i].type);
    }
}

static void init_linux(const struct boot_params* bp) {
    boot_info.boot_params = bp;
    copy_cmdline(bp->hdr.cmd_line_ptr | (uint64_t)bp->ext_cmd_line_ptr << 32);
    boot_info.rsdp = bp->acpi_rsdp_addr;
    boot_info.initrd_addr = bp->hdr.ramdisk_image | (uint64_t)bp->ext_ramdisk_image << 32;
    boot_info.initrd_size = bp->hdr.ramdisk_size | (uint64_t)bp->ext_ramdisk_size << 32;
    unsigned n = bp->e820_entries < 128 ? bp->e820_entries : 128;
    for (unsigned i = 0; i < n; i++)
        add_memmap(bp->e820_table[i].addr, bp->e820_table[i].size, bp->e820_table[i].type);
}

void boot_info_init(int kind, uint64_t raw) {
    boot_info.kind = kind;
    if (kind == BOOT_KIND_PVH)
        init_pvh((const struct hvm_start_info*)raw);
    else if (kind == BOOT_KIND_LINUX)
        init_linux((const struct boot_params*)raw);
}

const char* boot_kind_name(void) {
    return boot_info.kind == BOOT_KIND_PVH     ? "PVH"
           : boot_info.kind == BOOT_KIND_LINUX ? "Linux 64-bit"
                                               : "unknown";
}

uint64_t boot_ram_bytes(void) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < boot_info.memmap_entries; i++)
        if (boot_info.memmap[i].type == MEMMAP_RAM)
            total += boot_info.memmap[i].size;
    return total;
}
