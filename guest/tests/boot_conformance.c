/*
 * boot_conformance: checks what a Linux kernel would read at boot, through
 * the Linux 64-bit boot protocol (boot_conformance.bzImage) or PVH
 * (boot_conformance.elf). Expected values come on the command line:
 *
 *   vireo.cpus=N         CPUs in the MADT (and CPUID topology consistent with N)
 *   vireo.mem_mib=N      guest RAM size in MiB
 *   vireo.initrd_size=N  initrd/module 0 size in bytes
 *   vireo.initrd_sum=X   FNV-1a 32-bit hash of the initrd bytes (hex)
 *   vireo.no_mcfg        do not require an MCFG table (QEMU microvm has none)
 *   vireo.loose_memmap   accept an unsorted map and empty entries (QEMU
 *                        microvm's PVH map has both; Linux sorts it anyway)
 *
 * FNV-1a 32: h = 0x811c9dc5; for each byte b: h = (h ^ b) * 0x01000193 mod 2^32.
 */
#include "acpi.h"
#include "boot_info.h"
#include "cmdline.h"
#include "io.h"
#include "lapic.h"
#include "printf.h"
#include "report.h"
#include "ring0.h"
#include "string.h"

#define MIB (1ull << 20)

extern char __image_start[], __end[];

static uint32_t fnv1a32(const uint8_t* p, uint64_t n) {
    uint32_t h = 0x811c9dc5;
    for (uint64_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x01000193;
    return h;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
    return a < b + blen && b < a + alen;
}

static uint64_t image_start(void) {
    return (uint64_t)__image_start;
}
static uint64_t image_size(void) {
    return (uint64_t)(__end - __image_start);
}

/* True if [addr, addr+len) lies inside one RAM entry of the memory map. */
static bool in_ram(uint64_t addr, uint64_t len) {
    for (uint32_t i = 0; i < boot_info.memmap_entries; i++) {
        const struct memmap_entry* e = &boot_info.memmap[i];
        if (e->type == MEMMAP_RAM && addr >= e->addr && addr + len <= e->addr + e->size)
            return true;
    }
    return false;
}

static bool ram_overlaps(uint64_t addr, uint64_t len) {
    for (uint32_t i = 0; i < boot_info.memmap_entries; i++) {
        const struct memmap_entry* e = &boot_info.memmap[i];
        if (e->type == MEMMAP_RAM && overlaps(e->addr, e->size, addr, len))
            return true;
    }
    return false;
}

static void check_memmap(void) {
    uint32_t n = boot_info.memmap_entries;
    report(n > 0 && n <= MEMMAP_MAX, "memory map: %u entries", n);
    bool sizes = true, sorted = true, disjoint = true;
    for (uint32_t i = 0; i < n; i++) {
        const struct memmap_entry* e = &boot_info.memmap[i];
        printf("  memmap[%u]: %#014lx-%#014lx type %u\n", i, e->addr, e->addr + e->size - 1,
               e->type);
        if (!e->size)
            sizes = false;
        if (i && e->addr < boot_info.memmap[i - 1].addr)
            sorted = false;
        for (uint32_t j = 0; j < i; j++)
            if (overlaps(e->addr, e->size, boot_info.memmap[j].addr, boot_info.memmap[j].size))
                disjoint = false;
    }
    if (cmdline_has("vireo.loose_memmap")) {
        report_skip("memory map sorted, no empty entries: vireo.loose_memmap");
    } else {
        report(sizes, "memory map: no empty entries");
        report(sorted, "memory map: sorted by address");
    }
    report(disjoint, "memory map: entries do not overlap");
    report(!ram_overlaps(0xa0000, 0x60000), "memory map: 0xa0000-0xfffff is not RAM");
    report(!ram_overlaps(0xc0000000, 0x40000000),
           "memory map: PCI hole 0xc0000000-0xffffffff is not RAM");
    report(in_ram(0, 0x80000), "memory map: low 512 KiB are RAM");
    report(in_ram(image_start(), image_size()),
           "memory map: the kernel image (%#lx + %#lx) is in RAM", image_start(), image_size());
    uint64_t mib = cmdline_u64("vireo.mem_mib", 0);
    uint64_t ram = boot_ram_bytes();
    if (mib) {
        /* Everything but the legacy hole (and a reserved EBDA) is RAM. */
        report(ram <= mib * MIB && ram >= mib * MIB - 0x60000 - 0x1000,
               "memory map: RAM %#lx bytes matches vireo.mem_mib=%lu (less the legacy hole)", ram,
               mib);
    } else {
        report_skip("memory map total: no vireo.mem_mib");
    }
}

static void check_cmdline(uint64_t paddr, uint64_t max_len) {
    const char* s = (const char*)paddr;
    size_t len = 0;
    while (len <= max_len && s[len])
        len++;
    report(paddr != 0, "command line pointer set (%#lx)", paddr);
    report(len <= max_len, "command line NUL-terminated within %lu bytes (length %lu)", max_len,
           (uint64_t)len);
    report(!overlaps(paddr, len + 1, image_start(), image_size()),
           "command line is outside the kernel image");
    report(len > 0 && !strcmp(s, boot_info.cmdline), "command line: \"%s\"", boot_info.cmdline);
}

static void check_initrd(void) {
    uint64_t want_size = cmdline_u64("vireo.initrd_size", 0);
    if (!want_size) {
        report_skip("initrd: no vireo.initrd_size");
        return;
    }
    uint64_t addr = boot_info.initrd_addr, size = boot_info.initrd_size;
    printf("  initrd at %#lx, %lu bytes\n", addr, size);
    if (!report(addr != 0 && size == want_size, "initrd size %lu == vireo.initrd_size", size))
        return;
    report(in_ram(addr, size), "initrd lies in RAM");
    report(!overlaps(addr, size, image_start(), image_size()),
           "initrd does not overlap the kernel image");
    uint64_t want_sum = 0;
    char buf[20];
    if (cmdline_get("vireo.initrd_sum", buf, sizeof(buf))) {
        /* hex, with or without 0x */
        char hex[20] = "0x";
        const char* p = buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X') ? buf + 2 : buf;
        for (size_t i = 0; i < 16 && (hex[2 + i] = p[i]); i++)
            continue;
        if (!parse_u64(hex, &want_sum))
            want_sum = ~0ull;
        uint32_t sum = fnv1a32((const uint8_t*)addr, size);
        report(sum == want_sum, "initrd FNV-1a %08x == vireo.initrd_sum %08lx", sum, want_sum);
    } else {
        report_skip("initrd checksum: no vireo.initrd_sum");
    }
}

static void check_pvh(void) {
    const struct hvm_start_info* si = boot_info.start_info;
    printf("start_info at %p\n", si);
    if (!report(si->magic == PVH_START_MAGIC, "start_info magic %#x", si->magic))
        return;
    report(si->version >= 1, "start_info version %u >= 1 (has a memory map)", si->version);
    check_cmdline(si->cmdline_paddr, CMDLINE_MAX - 1);
    report(si->memmap_paddr && si->memmap_entries, "start_info memmap: %u entries at %#lx",
           si->memmap_entries, si->memmap_paddr);
    if (cmdline_u64("vireo.initrd_size", 0))
        report(si->nr_modules >= 1 && si->modlist_paddr, "start_info: %u module(s), list at %#lx",
               si->nr_modules, si->modlist_paddr);
    report(si->rsdp_paddr != 0, "start_info rsdp_paddr set (%#lx)", si->rsdp_paddr);
}

static void check_linux(void) {
    const struct boot_params* bp = boot_info.boot_params;
    const struct setup_header* h = &bp->hdr;
    extern char __bz_init_size[];
    printf("boot_params at %p\n", bp);
    report(h->boot_flag == 0xaa55, "hdr.boot_flag %#x", h->boot_flag);
    report(h->header == LINUX_HDRS_MAGIC, "hdr.header \"HdrS\"");
    report(h->version == 0x020f, "hdr.version %#x copied from the image", h->version);
    report(h->setup_sects == 1, "hdr.setup_sects %u copied from the image", h->setup_sects);
    report(h->xloadflags & XLF_KERNEL_64, "hdr.xloadflags %#x has XLF_KERNEL_64", h->xloadflags);
    report(h->init_size == (uint64_t)__bz_init_size, "hdr.init_size %#x copied from the image",
           h->init_size);
    report(h->type_of_loader != 0, "hdr.type_of_loader set (%#x)", h->type_of_loader);
    report(h->loadflags & LOADFLAG_LOADED_HIGH, "hdr.loadflags %#x has LOADED_HIGH", h->loadflags);
    report(h->code32_start == 0x100000, "hdr.code32_start %#x", h->code32_start);
    check_cmdline(h->cmd_line_ptr | (uint64_t)bp->ext_cmd_line_ptr << 32, h->cmdline_size);
    report(bp->e820_entries >= 1 && bp->e820_entries <= 128, "boot_params.e820_entries %u",
           bp->e820_entries);
    report(bp->acpi_rsdp_addr != 0, "boot_params.acpi_rsdp_addr set (%#lx)", bp->acpi_rsdp_addr);
    report(!overlaps((uint64_t)bp, sizeof(*bp), image_start(), image_size()),
           "boot_params is outside the kernel image");
}

static void check_acpi(void) {
    const struct acpi_rsdp* r = acpi_rsdp();
    if (!report(r != NULL, "RSDP found (%s, %p)", acpi_rsdp_source(), r))
        return;
    report(boot_info.rsdp == 0 || boot_info.rsdp == (uint64_t)r,
           "loader's RSDP address is a valid RSDP");
    report(acpi_checksum_ok(r, 20), "RSDP checksum");
    if (report(r->revision >= 2, "RSDP revision %u >= 2 (has an XSDT)", r->revision)) {
        report(r->length >= 36 && acpi_checksum_ok(r, r->length),
               "RSDP extended checksum (length %u)", r->length);
        report(r->xsdt_address != 0, "XSDT address %#lx", r->xsdt_address);
        const struct acpi_header* x = (const struct acpi_header*)r->xsdt_address;
        if (x)
            report(!memcmp(x->signature, "XSDT", 4) && acpi_checksum_ok(x, x->length),
                   "XSDT checksum");
    }
    unsigned n = acpi_table_count();
    bool all_ok = n > 0;
    for (unsigned i = 0; i < n; i++) {
        const struct acpi_header* t = acpi_table(i);
        bool ok = t && t->length >= sizeof(*t) && acpi_checksum_ok(t, t->length);
        if (t)
            printf("  table %.4s at %p, %u bytes: checksum %s\n", t->signature, t, t->length,
                   ok ? "ok" : "BAD");
        all_ok = all_ok && ok;
    }
    report(all_ok, "%u tables, every checksum valid", n);
    const struct acpi_header* dsdt = acpi_find_table("DSDT", 0);
    report(acpi_find_table("FACP", 0) != NULL, "FADT present");
    report(dsdt && !memcmp(dsdt->signature, "DSDT", 4) && acpi_checksum_ok(dsdt, dsdt->length),
           "DSDT checksum");
    if (cmdline_has("vireo.no_mcfg"))
        report_skip("MCFG: vireo.no_mcfg");
    else
        report(acpi_find_table("MCFG", 0) != NULL, "MCFG present");

    struct madt_info madt;
    if (!report(acpi_madt(&madt), "MADT present"))
        return;
    uint64_t cpus = cmdline_u64("vireo.cpus", 0);
    if (cpus)
        report(madt.cpus == cpus, "MADT: %u enabled processors == vireo.cpus (%lu)", madt.cpus,
               cpus);
    else
        report_skip("MADT processor count: no vireo.cpus");
    bool unique = true;
    for (unsigned i = 0; i < madt.cpus && i < MAX_CPUS; i++)
        for (unsigned j = 0; j < i; j++)
            if (madt.apic_ids[i] == madt.apic_ids[j])
                unique = false;
    report(unique, "MADT: APIC IDs are unique");
    report(madt.ioapics >= 1 && madt.ioapic_address == 0xfec00000, "MADT: IOAPIC at %#x",
           madt.ioapic_address);
    report(madt.lapic_address == 0xfee00000, "MADT: Local APIC address %#x", madt.lapic_address);
}

static void check_cpuid(void) {
    struct madt_info madt;
    acpi_madt(&madt);
    uint32_t max = r0_cpuid(0, 0).a;
    struct cpuid_regs l1 = r0_cpuid(1, 0);
    uint32_t apic = l1.b >> 24;
    uint32_t lapic = lapic_id();
    report(apic == lapic, "CPUID.1 EBX[31:24] APIC ID %u == LAPIC ID register %u", apic, lapic);
    bool in_madt = false;
    for (unsigned i = 0; i < madt.cpus && i < MAX_CPUS; i++)
        in_madt = in_madt || madt.apic_ids[i] == apic;
    report(in_madt, "BSP APIC ID %u is listed in the MADT", apic);
    uint64_t cpus = cmdline_u64("vireo.cpus", madt.cpus);
    if (cpus > 1)
        report(l1.d & (1u << 28), "CPUID.1 EDX.HTT set with %lu CPUs", cpus);
    for (uint32_t leaf = 0xb; leaf <= 0x1f; leaf += 0x1f - 0xb) {
        if (max < leaf || !r0_cpuid(leaf, 0).b) {
            report_skip("CPUID.%#x topology leaf not present", leaf);
            continue;
        }
        uint32_t logical = 0;
        bool ids = true, types = true;
        for (uint32_t sub = 0; sub < 8; sub++) {
            struct cpuid_regs t = r0_cpuid(leaf, sub);
            uint32_t type = (t.c >> 8) & 0xff;
            if (!type)
                break;
            if ((t.c & 0xff) != sub)
                types = false;
            if (t.d != apic)
                ids = false;
            logical = t.b & 0xffff;
            printf("  CPUID.%#x.%u: type %u, shift %u, logical processors %u\n", leaf, sub, type,
                   t.a & 0x1f, logical);
        }
        report(ids, "CPUID.%#x EDX x2APIC ID == APIC ID on every level", leaf);
        report(types, "CPUID.%#x ECX[7:0] echoes the sub-leaf", leaf);
        report(logical >= 1 && cpus % logical == 0,
               "CPUID.%#x: %u logical processors per package divides %lu CPUs", leaf, logical,
               cpus);
    }
    if (max >= 4 && (r0_cpuid(4, 0).a & 0x1f)) {
        uint32_t cores = (r0_cpuid(4, 0).a >> 26) + 1;
        report(cores >= 1 && cores <= 256, "CPUID.4 EAX[31:26]+1 = %u cores per package", cores);
    } else {
        report_skip("CPUID.4 not present");
    }
}

int main(void) {
    printf("Vireo guest kit: boot_conformance (%s)\n", boot_kind_name());
    if (boot_info.kind == BOOT_KIND_PVH)
        check_pvh();
    else
        check_linux();
    check_memmap();
    check_initrd();
    check_acpi();
    check_cpuid();
    report_summary();
}
