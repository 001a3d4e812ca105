#include "msix.h"

#include "io.h"
#include "lapic.h"
#include "trap.h"

#define MSIX_CTRL 2
#define MSIX_TABLE 4
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_SIZE 16
#define MSIX_ENTRY_CTRL_MASKED 1

volatile uint64_t msix_irq_count[256];

bool msix_init(const struct pci_dev* dev, struct msix* m) {
    m->dev = *dev;
    m->cap = pci_find_cap(dev, PCI_CAP_ID_MSIX, 0);
    if (!m->cap)
        return false;
    m->table_size = (pci_read16(dev, m->cap + MSIX_CTRL) & 0x7ff) + 1;
    uint32_t t = pci_read32(dev, m->cap + MSIX_TABLE);
    uint64_t bar = pci_bar_address(dev, t & 7);
    if (!bar)
        return false;
    m->table = bar + (t & ~7u);
    return true;
}

void msix_set_entry(struct msix* m, unsigned entry, uint8_t vector, uint32_t apic_id) {
    uint64_t e = m->table + entry * MSIX_ENTRY_SIZE;
    mmio_write32(e + 0, 0xfee00000u | (apic_id << 12));
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, vector); /* fixed delivery, edge */
    mmio_write32(e + 12, 0);     /* unmasked */
}

void msix_mask_entry(struct msix* m, unsigned entry) {
    mmio_write32(m->table + entry * MSIX_ENTRY_SIZE + 12, MSIX_ENTRY_CTRL_MASKED);
}

void msix_enable(struct msix* m) {
    uint16_t ctrl = pci_read16(&m->dev, m->cap + MSIX_CTRL);
    pci_write16(&m->dev, m->cap + MSIX_CTRL, (ctrl | MSIX_CTRL_ENABLE) & ~MSIX_CTRL_MASKALL);
}

static void count_handler(struct trap_frame* f) {
    msix_irq_count[f->vector]++;
    lapic_eoi();
}

void msix_count_vector(uint8_t vector) {
    trap_set_handler(vector, count_handler);
    lapic_enable();
}
