/* MSI-X: table entries pointing at a LAPIC vector, and a counting handler. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pci.h"

struct msix {
    struct pci_dev dev;
    uint8_t cap;
    uint16_t table_size;
    uint64_t table; /* address of entry 0 */
};

/* Finds the capability and maps the table; MSI-X stays disabled. */
bool msix_init(const struct pci_dev* dev, struct msix* m);
/* Entry -> fixed delivery of `vector` to `apic_id`, unmasked. */
void msix_set_entry(struct msix* m, unsigned entry, uint8_t vector, uint32_t apic_id);
void msix_mask_entry(struct msix* m, unsigned entry);
/* Sets MSI-X Enable (and clears Function Mask) in the message control word. */
void msix_enable(struct msix* m);

/* Installs a handler on `vector` that counts into msix_irq_count[vector] and sends EOI. */
void msix_count_vector(uint8_t vector);
extern volatile uint64_t msix_irq_count[256];
