/* Time from the TSC (rdtsc works natively in ring 3). */
#pragma once

#include <stdint.h>

/* TSC frequency in kHz from CPUID 0x15, CPUID 0x40000010 or kvmclock's
 * scale (MSR 0x4b564d01, handled by KVM itself); 0 if none of them says. */
uint64_t tsc_khz(void);
/* Where tsc_khz() came from: "cpuid15", "cpuid40000010", "kvmclock", "none". */
const char* tsc_khz_source(void);
/* Microseconds since boot-ish; assumes 1 GHz when the frequency is unknown. */
uint64_t time_us(void);
uint64_t cycles_to_ns(uint64_t cycles);
void delay_us(uint64_t us);
