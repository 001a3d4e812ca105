#include "pci.h"

#include "acpi.h"
#include "io.h"

#define ECAM_DEFAULT_BASE 0xe0000000ull
#define CF8_PORT 0xcf8
#define CFC_PORT 0xcfc

static uint64_t ecam_base;
static int use_cf8;
static int initialised;
static const char* method = "none";

void pci_init(void) {
    if (initialised)
        return;
    initialised = 1;
    const struct acpi_header* mcfg = acpi_find_table("MCFG", 0);
    if (mcfg && mcfg->length >= 44 + 16) {
        /* First allocation entry: base (u64), segment (u16), start bus, end bus. */
        ecam_base = *(const uint64_t*)((const uint8_t*)mcfg + 44);
        method = "ecam (MCFG)";
        return;
    }
    outl(CF8_PORT, 0x80000000);
    if (inl(CF8_PORT) == 0x80000000) {
        use_cf8 = 1;
        method = "cf8";
        return;
    }
    ecam_base = ECAM_DEFAULT_BASE;
    method = "ecam (default base)";
}

const char* pci_access_method(void) {
    pci_init();
    return method;
}

static uint64_t ecam(const struct pci_dev* d, unsigned off) {
    return ecam_base + ((uint64_t)d->bus << 20) + ((uint64_t)d->dev << 15) +
           ((uint64_t)d->fn << 12) + off;
}

static void cf8_select(const struct pci_dev* d, unsigned off) {
    outl(CF8_PORT, 0x80000000u | (uint32_t)d->bus << 16 | (uint32_t)d->dev << 11 |
                       (uint32_t)d->fn << 8 | (off & 0xfc));
}

uint32_t pci_read32(const struct pci_dev* d, unsigned off) {
    pci_init();
    if (!use_cf8)
        return mmio_read32(ecam(d, off));
    cf8_select(d, off);
    return inl(CFC_PORT);
}

uint16_t pci_read16(const struct pci_dev* d, unsigned off) {
    pci_init();
    if (!use_cf8)
        return mmio_read16(ecam(d, off));
    cf8_select(d, off);
    return inw(CFC_PORT + (off & 2));
}

uint8_t pci_read8(const struct pci_dev* d, unsigned off) {
    pci_init();
    if (!use_cf8)
        return mmio_read8(ecam(d, off));
    cf8_select(d, off);
    return inb(CFC_PORT + (off & 3));
}

void pci_write32(const struct pci_dev* d, unsigned off, uint32_t v) {
    pci_init();
    if (!use_cf8) {
        mmio_write32(ecam(d, off), v);
        return;
    }
    cf8_select(d, off);
    outl(CFC_PORT, v);
}

void pci_write16(const struct pci_dev* d, unsigned off, uint16_t v) {
    pci_init();
    if (!use_cf8) {
        mmio_write16(ecam(d, off), v);
        return;
    }
    cf8_select(d, off);
    outw(CFC_PORT + (off & 2), v);
}

bool pci_find_device(uint16_t vendor, uint16_t device, struct pci_dev* out) {
    for (unsigned dev = 0; dev < 32; dev++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            struct pci_dev d = {0, (uint8_t)dev, (uint8_t)fn, 0, 0};
            uint32_t id = pci_read32(&d, PCI_VENDOR_ID);
            if ((id & 0xffff) == 0xffff || id == 0) {
                if (fn == 0)
                    break;
                continue;
            }
            d.vendor = (uint16_t)id;
            d.device = (uint16_t)(id >> 16);
            if (d.vendor == vendor && d.device == device) {
                *out = d;
                return true;
            }
            if (fn == 0 && !(pci_read8(&d, 0x0e) & 0x80))
                break; /* single-function */
        }
    }
    return false;
}

uint8_t pci_find_cap(const struct pci_dev* d, uint8_t id, uint8_t after) {
    if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST))
        return 0;
    uint8_t p = after ? pci_read8(d, after + 1) : pci_read8(d, PCI_CAP_PTR);
    for (int guard = 0; p && guard < 48; guard++) {
        p &= 0xfc;
        if (pci_read8(d, p) == id)
            return p;
        p = pci_read8(d, p + 1);
    }
    return 0;
}

static uint64_t next_free = PCI_MMIO_WINDOW_START;

uint64_t pci_bar_address(const struct pci_dev* d, unsigned bar) {
    unsigned off = PCI_BAR0 + 4 * bar;
    uint32_t lo = pci_read32(d, off);
    if (lo & 1)
        return 0; /* I/O BAR */
    bool is64 = ((lo >> 1) & 3) == 2;
    uint64_t addr = lo & ~0xfull;
    if (is64)
        addr |= (uint64_t)pci_read32(d, off + 4) << 32;
    if (!addr) {
        /* Size it (write all ones, read the mask back) and place it, naturally aligned. */
        uint16_t cmd = pci_read16(d, PCI_COMMAND);
        pci_write16(d, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
        pci_write32(d, off, 0xffffffff);
        uint64_t mask = pci_read32(d, off) & ~0xfull;
        if (is64) {
            pci_write32(d, off + 4, 0xffffffff);
            mask |= (uint64_t)pci_read32(d, off + 4) << 32;
        } else {
            mask |= 0xffffffff00000000ull;
        }
        uint64_t size = ~mask + 1;
        if (!mask || size > PCI_MMIO_WINDOW_END - PCI_MMIO_WINDOW_START)
            return 0;
        addr = (next_free + size - 1) & ~(size - 1);
        if (addr + size > PCI_MMIO_WINDOW_END)
            return 0;
        next_free = addr + size;
        pci_write32(d, off, (uint32_t)addr);
        if (is64)
            pci_write32(d, off + 4, (uint32_t)(addr >> 32));
    }
    uint16_t cmd = pci_read16(d, PCI_COMMAND);
    if (!(cmd & PCI_COMMAND_MEMORY))
        pci_write16(d, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
    return addr;
}

void pci_enable_bus_master(const struct pci_dev* d) {
    pci_write16(d, PCI_COMMAND,
                pci_read16(d, PCI_COMMAND) | PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
}
