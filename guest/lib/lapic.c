#include "lapic.h"

#include "io.h"

#define LAPIC_ID 0x020
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define ICR_DELIVERY_PENDING 0x1000

uint32_t lapic_id(void) {
    return mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
}

void lapic_enable(void) {
    mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100 | LAPIC_SPURIOUS_VECTOR);
}

void lapic_eoi(void) {
    mmio_write32(LAPIC_BASE + LAPIC_EOI, 0);
}

void lapic_send_ipi(uint32_t apic_id, uint32_t icr_low) {
    mmio_write32(LAPIC_BASE + LAPIC_ICR_HIGH, apic_id << 24);
    mmio_write32(LAPIC_BASE + LAPIC_ICR_LOW, icr_low);
    for (int i = 0; i < 1000 && (mmio_read32(LAPIC_BASE + LAPIC_ICR_LOW) & ICR_DELIVERY_PENDING);
         i++)
        cpu_relax();
}
