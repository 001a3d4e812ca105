#include "trap.h"

#include "cpu.h"
#include "exit.h"
#include "lapic.h"
#include "printf.h"

static trap_handler handlers[256];
volatile uint64_t unexpected_interrupts;

void trap_set_handler(uint8_t vector, trap_handler handler) {
    handlers[vector] = handler;
}

void trap_dispatch(struct trap_frame* f) {
    if (handlers[f->vector]) {
        handlers[f->vector](f);
        return;
    }
    if (f->vector >= 32) {
        unexpected_interrupts++;
        if (f->vector != LAPIC_SPURIOUS_VECTOR)
            lapic_eoi();
        return;
    }
    struct percpu* c = this_cpu();
    if (c->fixup_rip && (f->cs & 3) == 0) {
        f->rip = c->fixup_rip;
        c->fault_vector = (uint32_t)f->vector;
        c->fixup_rip = 0;
        return;
    }
    printf_unlocked("FATAL: exception %lu error %#lx at rip %#lx (ring %lu) rsp %#lx on cpu %u\n",
                    f->vector, f->error, f->rip, f->cs & 3, f->rsp, c->index);
    if (f->vector == 14) {
        uint64_t cr2;
        asm volatile("movq %%cr2, %0" : "=r"(cr2));
        printf_unlocked("FATAL: page fault address %#lx\n", cr2);
    }
    exit(EXIT_ABORT);
}
