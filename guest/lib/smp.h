/* Application processor start-up (INIT-SIPI-SIPI through a real-mode trampoline). */
#pragma once

#include <stdint.h>

typedef void (*ap_function)(unsigned cpu_index);

/* Starts every enabled CPU of the MADT other than the caller, one at a time.
 * Each AP gets its own kernel and user stacks, its own TSS, enters long mode
 * and runs fn(cpu_index) in ring 3 (cpu_index 1, 2, ... in MADT order), then
 * halts. Returns the number of APs that reached fn, waiting at most
 * timeout_ms for each. Call from the BSP, in ring 3, once. */
unsigned smp_start_aps(ap_function fn, unsigned timeout_ms);

/* This CPU's index (0 = BSP) and LAPIC ID as recorded at start-up. */
unsigned smp_cpu_index(void);
uint32_t smp_apic_id(void);
