/* PCI bus 0: config space through ECAM (MCFG) or mechanism #1 (0xcf8/0xcfc). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VENDOR 0x09

/* Where unassigned BARs are placed (the machine contract's 32-bit window). */
#define PCI_MMIO_WINDOW_START 0xc0000000ull
#define PCI_MMIO_WINDOW_END 0xe0000000ull

struct pci_dev {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
};

/* Chooses the config mechanism: ECAM from MCFG; else 0xcf8 if it responds;
 * else ECAM at the contract's 0xe0000000 (QEMU microvm: ECAM, no MCFG). */
void pci_init(void);
/* "ecam (MCFG)", "ecam (default base)" or "cf8". */
const char* pci_access_method(void);

uint32_t pci_read32(const struct pci_dev* d, unsigned off);
uint16_t pci_read16(const struct pci_dev* d, unsigned off);
uint8_t pci_read8(const struct pci_dev* d, unsigned off);
void pci_write32(const struct pci_dev* d, unsigned off, uint32_t v);
void pci_write16(const struct pci_dev* d, unsigned off, uint16_t v);

/* First function on bus 0 with this vendor/device ID. */
bool pci_find_device(uint16_t vendor, uint16_t device, struct pci_dev* out);
/* Offset of the first capability `id` after offset `after` (0: from the start); 0 if none. */
uint8_t pci_find_cap(const struct pci_dev* d, uint8_t id, uint8_t after);
/* Address of memory BAR `bar` (64-bit BARs use bar and bar+1). A BAR nobody
 * assigned (reads 0) gets space from the PCI window. Enables memory decoding. */
uint64_t pci_bar_address(const struct pci_dev* d, unsigned bar);
void pci_enable_bus_master(const struct pci_dev* d);
