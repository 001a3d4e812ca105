/* Exceptions and interrupts: one C dispatcher, handlers per vector. */
#pragma once

#include <stdint.h>

struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

typedef void (*trap_handler)(struct trap_frame* frame);

/* Install a handler for `vector` (runs in ring 0, interrupts off). Handlers
 * for device interrupts must send the LAPIC EOI themselves (lapic_eoi()). */
void trap_set_handler(uint8_t vector, trap_handler handler);

/* Called from boot/isr.S. */
void trap_dispatch(struct trap_frame* frame);

/* Number of interrupts (vector >= 32) that arrived without a handler. */
extern volatile uint64_t unexpected_interrupts;
