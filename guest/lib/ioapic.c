#include "ioapic.h"

#include "io.h"

uint32_t ioapic_read(uint32_t reg) {
    mmio_write32(IOAPIC_BASE, reg);
    return mmio_read32(IOAPIC_BASE + 0x10);
}

void ioapic_write(uint32_t reg, uint32_t value) {
    mmio_write32(IOAPIC_BASE, reg);
    mmio_write32(IOAPIC_BASE + 0x10, value);
}

void ioapic_route(unsigned pin, uint8_t vector, uint32_t apic_id, uint32_t flags) {
    ioapic_write(0x10 + 2 * pin + 1, apic_id << 24);
    ioapic_write(0x10 + 2 * pin, vector | flags);
}

void ioapic_mask(unsigned pin) {
    ioapic_write(0x10 + 2 * pin, 0x10000);
}
