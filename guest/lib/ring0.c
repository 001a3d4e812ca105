#include "ring0.h"

#include "cpu.h"
#include "io.h"

static uint64_t do_rdmsr(uint64_t msr) {
    return rdmsr((uint32_t)msr);
}

uint64_t r0_rdmsr(uint32_t msr) {
    return ring0_call(do_rdmsr, msr);
}

struct msr_write {
    uint32_t msr;
    uint64_t value;
    int safe;
};

/* A #GP on rdmsr/wrmsr resumes at label 1: with fault_vector set. */
static uint64_t do_msr_access(uint64_t arg) {
    struct msr_write* w = (struct msr_write*)arg;
    struct percpu* c = this_cpu();
    uint32_t lo = (uint32_t)w->value, hi = (uint32_t)(w->value >> 32);
    c->fault_vector = 0;
    if (w->safe < 0) {
        asm volatile(
            "leaq 1f(%%rip), %%rax\n\t"
            "movq %%rax, %[fix]\n\t"
            "rdmsr\n\t"
            "1:"
            : "=&a"(lo), "=d"(hi), [fix] "=m"(c->fixup_rip)
            : "c"(w->msr)
            : "memory");
        w->value = ((uint64_t)hi << 32) | lo;
    } else {
        asm volatile(
            "leaq 1f(%%rip), %%r8\n\t"
            "movq %%r8, %[fix]\n\t"
            "wrmsr\n\t"
            "1:"
            : [fix] "=m"(c->fixup_rip)
            : "c"(w->msr), "a"(lo), "d"(hi)
            : "r8", "memory");
    }
    c->fixup_rip = 0;
    return c->fault_vector ? (uint64_t)-1 : 0;
}

static uint64_t do_wrmsr(uint64_t arg) {
    const struct msr_write* w = (const struct msr_write*)arg;
    wrmsr(w->msr, w->value);
    return 0;
}

void r0_wrmsr(uint32_t msr, uint64_t value) {
    struct msr_write w = {msr, value, 0};
    ring0_call(do_wrmsr, (uint64_t)&w);
}

int r0_rdmsr_safe(uint32_t msr, uint64_t* value) {
    struct msr_write w = {msr, 0, -1};
    if (ring0_call(do_msr_access, (uint64_t)&w))
        return -1;
    *value = w.value;
    return 0;
}

int r0_wrmsr_safe(uint32_t msr, uint64_t value) {
    struct msr_write w = {msr, value, 1};
    return ring0_call(do_msr_access, (uint64_t)&w) ? -1 : 0;
}

static uint64_t do_cpuid(uint64_t arg) {
    struct cpuid_regs* r = (struct cpuid_regs*)arg;
    *r = cpuid(r->a, r->c);
    return 0;
}

struct cpuid_regs r0_cpuid(uint32_t leaf, uint32_t subleaf) {
    struct cpuid_regs r = {leaf, 0, subleaf, 0};
    ring0_call(do_cpuid, (uint64_t)&r);
    return r;
}

static uint64_t do_wait_irq(uint64_t arg) {
    volatile uint64_t* flag = (volatile uint64_t*)arg;
    if (!*flag)
        asm volatile("sti; hlt; cli" ::: "memory"); /* sti's shadow closes the race */
    return *flag;
}

uint64_t r0_wait_irq(volatile uint64_t* flag) {
    return ring0_call(do_wait_irq, (uint64_t)flag);
}

static uint64_t do_halt(uint64_t arg) {
    (void)arg;
    for (;;)
        asm volatile("cli; hlt");
    return 0;
}

void r0_halt_forever(void) {
    ring0_call(do_halt, 0);
    __builtin_unreachable();
}
