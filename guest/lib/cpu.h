/* Per-CPU state, reachable from ring 0 and ring 3 through %gs:0. */
#pragma once

#include <stdint.h>

#include "../boot/layout.h"

struct percpu {
    struct percpu* self; /* must stay first: this_cpu() reads %gs:0 */
    uint32_t index;      /* 0 = BSP, then APs in MADT order */
    uint32_t apic_id;
    uint64_t kstack_top;
    uint64_t ustack_top;
    /* Exception recovery for *_safe() helpers: a fault in ring 0 resumes at fixup_rip. */
    volatile uint64_t fixup_rip;
    volatile uint32_t fault_vector;
};

extern struct percpu percpu[MAX_CPUS];

static inline struct percpu* this_cpu(void) {
    struct percpu* p;
    asm volatile("movq %%gs:0, %0" : "=r"(p));
    return p;
}

static inline unsigned current_ring(void) {
    uint16_t cs;
    asm volatile("movw %%cs, %0" : "=r"(cs));
    return cs & 3;
}

/* Ring 0: GDT TSS slot, TSS, task register and GS base for CPU `index`. */
void cpu_init_ring0(uint32_t index);

/* Ring 0: build the IDT (BSP, once) and load it (every CPU). */
void idt_build(void);
void idt_load(void);

/* Stacks, from boot/entry.S and desc.c. */
extern uint8_t kstacks[MAX_CPUS][KSTACK_SIZE];
extern uint8_t ustacks[MAX_CPUS][USTACK_SIZE];

/* boot/entry.S: iretq to ring 3 at fn(arg) on user_rsp, interrupts enabled. */
void enter_user(void (*fn)(uint64_t), uint64_t user_rsp, uint64_t arg) __attribute__((noreturn));
