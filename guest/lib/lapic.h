/* Local APIC in xAPIC mode at 0xfee00000 (mapped user-accessible). */
#pragma once

#include <stdint.h>

#define LAPIC_BASE 0xfee00000ull
#define LAPIC_SPURIOUS_VECTOR 0xff

#define ICR_INIT 0x00000500
#define ICR_STARTUP 0x00000600
#define ICR_LEVEL_ASSERT 0x00004000

uint32_t lapic_id(void);
/* Software-enable this CPU's LAPIC (SVR), spurious vector 0xff. */
void lapic_enable(void);
void lapic_eoi(void);
/* Send an IPI (ICR high = destination, then low); waits for delivery. */
void lapic_send_ipi(uint32_t apic_id, uint32_t icr_low);
