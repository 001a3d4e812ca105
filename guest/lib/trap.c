#include "trap.h"

#include "cpu.h"
#include "exit.h"
#include "lapic.h"
#include "printf.h"

#define VECTOR_UD 6

static trap_handler handlers[256];
volatile uint64_t unexpected_interrupts;

void trap_set_handler(uint8_t vector, trap_handler handler) { handlers[vector] = handler; }

static int is_ring0_call(const struct trap_frame *f) {
    const uint8_t *ip = (const uint8_t *)f->rip;
    return f->vector == VECTOR_UD && ip[0] == 0x0f && ip[1] == 0x0b &&
           *(const uint32_t *)(ip + 2) == RING0_CALL_MAGIC;
}

void trap_dispatch(struct trap_frame *f) {
    if (is_ring0_call(f)) {
        uint64_t (*fn)(uint64_t) = (uint64_t(*)(uint64_t))f->rdi;
        f->rax = fn(f->rsi);
        f->rip += 6;
        return;
    }
    if (handlers[f->vector]) {
        handlers[f->vector](f);
        return;
    }
    if (f->vector >= 32) {
        unexpected_interrupts++;
        if (f->vector != LAPIC_SPURIOUS_VECTOR) lapic_eoi();
        return;
    }
    struct percpu *c = this_cpu();
    if (c->fixup_rip && (f->cs & 3) == 0) {
        f->rip = c->fixup_rip;
        c->fault_vector = (uint32_t)f->vector;
        c->fixup_rip = 0;
        return;
    }
    printf_unlocked("FATAL: exception %lu error %#lx at rip %#lx (ring %lu) rsp %#lx on cpu %u\n", f->vector,
                    f->error, f->rip, f->cs & 3, f->rsp, c->index);
    if (f->vector == 14) {
        uint64_t cr2;
        asm volatile("movq %%cr2, %0" : "=r"(cr2));
        printf_unlocked("FATAL: page fault address %#lx\n", cr2);
    }
    exit(EXIT_ABORT);
}
