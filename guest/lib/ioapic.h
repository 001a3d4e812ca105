/* IOAPIC at 0xfec00000: route a pin to a vector on one CPU. */
#pragma once

#include <stdint.h>

#define IOAPIC_BASE 0xfec00000ull

#define IOAPIC_EDGE_HIGH 0x0000
#define IOAPIC_LEVEL_LOW 0xa000 /* level-triggered (bit 15), active low (bit 13) */

uint32_t ioapic_read(uint32_t reg);
void ioapic_write(uint32_t reg, uint32_t value);
/* Fixed delivery, physical destination `apic_id`, unmasked. */
void ioapic_route(unsigned pin, uint8_t vector, uint32_t apic_id, uint32_t flags);
void ioapic_mask(unsigned pin);
