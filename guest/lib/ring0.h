/*
 * The ring-0 call service. Test bodies run in ring 3; ring0_call(fn, arg)
 * raises #UD on a `ud2` followed by a marker, and the #UD handler runs
 * fn(arg) in ring 0 with interrupts off, then returns its result. Costs one
 * exception round trip (~25 us here); use it for privileged instructions
 * and for exit-heavy loops (an exit costs ~8 us from ring 0, ~60 us from ring 3).
 */
#pragma once

#include <stdint.h>

#include "../boot/layout.h"
#include "io.h"

typedef uint64_t (*ring0_fn)(uint64_t arg);

/* fn runs under the C calling convention, so every caller-saved register is
 * clobbered: the #UD fast path (boot/isr.S) saves none of them. */
static inline uint64_t ring0_call(ring0_fn fn, uint64_t arg) {
    uint64_t ret;
    asm volatile("ud2\n\t.long %c[magic]"
                 : "=a"(ret), "+D"(fn), "+S"(arg)
                 : [magic] "i"(RING0_CALL_MAGIC)
                 : "rcx", "rdx", "r8", "r9", "r10", "r11", "memory", "cc");
    return ret;
}

/* Privileged helpers, callable from ring 3 (each is one ring0_call). */
uint64_t r0_rdmsr(uint32_t msr);
void r0_wrmsr(uint32_t msr, uint64_t value);
/* rdmsr/wrmsr that return -1 instead of dying on #GP (e.g. MSR not present). */
int r0_rdmsr_safe(uint32_t msr, uint64_t* value);
int r0_wrmsr_safe(uint32_t msr, uint64_t value);
/* CPUID executed in ring 0. Use it for per-CPU leaves (APIC IDs, topology):
 * on the nested KVM we test on, ring-3 CPUID can return another vCPU's values. */
struct cpuid_regs r0_cpuid(uint32_t leaf, uint32_t subleaf);
/* Wait in ring 0 (sti; hlt) until *flag != 0 or an interrupt arrived; returns *flag. */
uint64_t r0_wait_irq(volatile uint64_t* flag);
/* Stop this CPU for good (cli; hlt). */
void r0_halt_forever(void) __attribute__((noreturn));
