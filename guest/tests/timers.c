/*
 * timers: the machine's clocks and timer interrupts, as a Linux kernel uses
 * them at boot. Each is measured against the TSC (whose rate kvmclock gives).
 *
 *   PIT      channel 0 at 1 kHz, through the IOAPIC pin the MADT's interrupt
 *            source override names for ISA IRQ 0 (pin 2 on a PC); IOAPIC pin 0,
 *            routed too, must stay silent. Linux checks exactly this at boot
 *            ("..TIMER: vector=0x30 apic1=0 pin1=2") and calibrates the LAPIC
 *            timer against these ticks.
 *   LAPIC    one-shot (fires once, current count ends at 0), periodic (fires
 *            again and again, never faster than its period), TSC-deadline (when CPUID.1:ECX[24]
 *            offers it: fires no earlier than the deadline, and never once
 *            disarmed).
 *   PM timer the FADT's PM_TMR_BLK counts at 3.579545 MHz (within 2% of the
 *            TSC over 200 ms), 32 bits wide when TMR_VAL_EXT says so.
 *
 * A busy host delays and merges timer interrupts (KVM does not replay a
 * periodic LAPIC tick the vCPU missed): the checks bound counts from above
 * tightly and from below loosely, and time every reading by the TSC around it.
 *
 * vireo.expect_tsc_deadline=1 makes a missing TSC-deadline timer a failure
 * (Vireo offers it whenever KVM emulates it).
 */
#include "acpi.h"
#include "cmdline.h"
#include "io.h"
#include "ioapic.h"
#include "lapic.h"
#include "printf.h"
#include "report.h"
#include "ring0.h"
#include "trap.h"
#include "tsc.h"

#define PIT_VECTOR 0x40
#define PIN0_VECTOR 0x41
#define LAPIC_TIMER_VECTOR 0x42

#define PIT_CHANNEL0 0x40
#define PIT_COMMAND 0x43
#define PIT_HZ 1193182u
#define PIT_TICK_HZ 1000u

#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE 0x3e0
#define LVT_MASKED (1u << 16)
#define LVT_PERIODIC (1u << 17)
#define LVT_TSC_DEADLINE (2u << 17)
#define DIVIDE_BY_1 0xb
#define MSR_TSC_DEADLINE 0x6e0
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)

#define FADT_PM_TMR_BLK 76
#define FADT_PM_TMR_LEN 91
#define FADT_FLAG_TMR_VAL_EXT (1u << 8)
#define PM_TIMER_HZ 3579545u

static volatile uint64_t pit_ticks, pin0_ticks, lapic_ticks, lapic_fired_at;

static void pit_handler(struct trap_frame* f) {
    (void)f;
    pit_ticks++;
    lapic_eoi();
}

static void pin0_handler(struct trap_frame* f) {
    (void)f;
    pin0_ticks++;
    lapic_eoi();
}

static void lapic_timer_handler(struct trap_frame* f) {
    (void)f;
    if (!lapic_ticks)
        lapic_fired_at = rdtsc();
    lapic_ticks++;
    lapic_eoi();
}

static uint64_t us_to_cycles(uint64_t us) {
    return us * tsc_khz() / 1000;
}

/* Waits `us` microseconds of TSC time, interrupts on (ring 3). */
static void wait_us(uint64_t us) {
    delay_us(us);
}

static bool within(uint64_t value, uint64_t expected, unsigned percent) {
    uint64_t slack = expected * percent / 100;
    return value + slack >= expected && value <= expected + slack;
}

static void pit_through_the_ioapic(void) {
    uint32_t flags;
    uint32_t gsi = acpi_isa_irq_gsi(0, &flags);
    report(gsi == 2 && flags == IOAPIC_EDGE_HIGH,
           "MADT: ISA IRQ 0 (PIT) arrives at IOAPIC pin %u, edge, active high", gsi);
    trap_set_handler(PIT_VECTOR, pit_handler);
    trap_set_handler(PIN0_VECTOR, pin0_handler);
    ioapic_route(gsi, PIT_VECTOR, lapic_id(), flags);
    if (gsi != 0)
        ioapic_route(0, PIN0_VECTOR, lapic_id(), IOAPIC_EDGE_HIGH);

    /* Channel 0, lobyte/hibyte, mode 2 (rate generator), binary. */
    uint16_t divisor = (uint16_t)(PIT_HZ / PIT_TICK_HZ);
    outb(PIT_COMMAND, 0x34);
    outb(PIT_CHANNEL0, (uint8_t)divisor);
    outb(PIT_CHANNEL0, (uint8_t)(divisor >> 8));
    const uint64_t window_us = 300000;
    uint64_t start_ticks = pit_ticks;
    wait_us(window_us);
    uint64_t ticks = pit_ticks - start_ticks;
    /* Channel 0 back to a one-shot that never fires again (mode 0, count 0
     * would still fire once: leave it counting the full 65536). */
    outb(PIT_COMMAND, 0x30);
    outb(PIT_CHANNEL0, 0xff);
    outb(PIT_CHANNEL0, 0xff);
    ioapic_mask(gsi);
    if (gsi != 0)
        ioapic_mask(0);

    uint64_t expected = window_us * PIT_TICK_HZ / 1000000;
    printf("PIT: %lu ticks in %lu ms at IOAPIC pin %u (expected ~%lu), %lu at pin 0\n", ticks,
           window_us / 1000, gsi, expected, pin0_ticks);
    report(ticks > 0, "PIT: IRQ 0 arrives at IOAPIC pin %u", gsi);
    report(ticks >= expected / 4 && ticks <= expected * 3 / 2,
           "PIT: %lu ticks in %lu ms at 1 kHz (a quarter to 1.5 times %lu)", ticks,
           window_us / 1000, expected);
    if (gsi != 0)
        report(pin0_ticks == 0, "PIT: nothing arrives at IOAPIC pin 0 (%lu interrupts)",
               pin0_ticks);
}

static void lapic_write(uint32_t reg, uint32_t value) {
    mmio_write32(LAPIC_BASE + reg, value);
}

static uint32_t lapic_read(uint32_t reg) {
    return mmio_read32(LAPIC_BASE + reg);
}

/* One-shot, then periodic at the rate the one-shot measured. */
static void lapic_timer_counts(void) {
    trap_set_handler(LAPIC_TIMER_VECTOR, lapic_timer_handler);
    lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_1);

    /* Calibrate: how far the current count falls in 10 ms. */
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_VECTOR | LVT_MASKED);
    lapic_write(LAPIC_TIMER_INITIAL, 0xffffffff);
    uint64_t begin = rdtsc();
    wait_us(10000);
    uint32_t fell = 0xffffffff - lapic_read(LAPIC_TIMER_CURRENT);
    uint64_t per_ms = fell * tsc_khz() / (rdtsc() - begin);
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    printf("LAPIC timer: %lu counts per ms (divide by 1)\n", per_ms);
    if (!report(per_ms > 0, "LAPIC timer: the current count falls"))
        return;

    /* One-shot of 20 ms: exactly one interrupt, and the count stops at 0. */
    lapic_ticks = 0;
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_VECTOR);
    begin = rdtsc();
    lapic_write(LAPIC_TIMER_INITIAL, (uint32_t)(per_ms * 20));
    wait_us(100000);
    report(lapic_ticks == 1, "LAPIC one-shot: fired once (%lu)", lapic_ticks);
    uint64_t after_us = lapic_ticks ? (lapic_fired_at - begin) * 1000 / tsc_khz() : 0;
    report(after_us >= 19000, "LAPIC one-shot: fired after %lu us, not before its 20 ms", after_us);
    report(lapic_read(LAPIC_TIMER_CURRENT) == 0, "LAPIC one-shot: the current count ends at 0");

    /* Periodic, 2 ms: up to 150 interrupts in 300 ms; at least 10 shows it
     * rearms itself (a busy host may merge ticks, never add them). */
    lapic_ticks = 0;
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_VECTOR | LVT_PERIODIC);
    lapic_write(LAPIC_TIMER_INITIAL, (uint32_t)(per_ms * 2));
    wait_us(300000);
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_VECTOR | LVT_MASKED);
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    uint64_t periods = lapic_ticks;
    report(periods >= 10 && periods <= 151,
           "LAPIC periodic: %lu interrupts in 300 ms at 2 ms (10 to 150)", periods);
    uint64_t settled = lapic_ticks;
    wait_us(20000);
    report(lapic_ticks == settled, "LAPIC periodic: stops when the initial count is 0");
}

static void lapic_tsc_deadline(void) {
    bool offered = cpuid(1, 0).c & CPUID_1_ECX_TSC_DEADLINE;
    if (!offered) {
        if (cmdline_u64("vireo.expect_tsc_deadline", 0))
            report(false, "TSC-deadline timer offered in CPUID.1:ECX[24]");
        else
            report_skip("TSC-deadline timer: not offered in CPUID.1:ECX[24]");
        return;
    }
    report(true, "TSC-deadline timer offered in CPUID.1:ECX[24]");
    lapic_ticks = 0;
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_VECTOR | LVT_TSC_DEADLINE);
    uint64_t deadline = rdtsc() + us_to_cycles(20000);
    r0_wrmsr(MSR_TSC_DEADLINE, deadline);
    wait_us(100000);
    report(lapic_ticks == 1, "TSC deadline: fired once (%lu)", lapic_ticks);
    report(lapic_ticks && lapic_fired_at >= deadline,
           "TSC deadline: not before the deadline (%ld us after it)",
           lapic_ticks ? (int64_t)(lapic_fired_at - deadline) * 1000 / (int64_t)tsc_khz() : 0);

    /* Armed, then disarmed by writing 0: no interrupt. */
    lapic_ticks = 0;
    r0_wrmsr(MSR_TSC_DEADLINE, rdtsc() + us_to_cycles(20000));
    r0_wrmsr(MSR_TSC_DEADLINE, 0);
    wait_us(50000);
    report(lapic_ticks == 0, "TSC deadline: writing 0 disarms it");
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_VECTOR | LVT_MASKED);
}

struct pm_reading {
    uint32_t count;
    uint64_t tsc; /* the middle of the TSC readings around the port read */
};

/* A PM timer reading timed by the TSC: the port read exits to the VMM, and a
 * vCPU preempted there would misdate it, so the narrowest of a few tries wins. */
static struct pm_reading pm_read(uint16_t port, uint32_t mask) {
    struct pm_reading best = {0, 0};
    uint64_t best_width = ~0ull;
    for (int i = 0; i < 20; i++) {
        uint64_t before = rdtsc();
        uint32_t count = inl(port) & mask;
        uint64_t after = rdtsc();
        if (after - before < best_width) {
            best_width = after - before;
            best = (struct pm_reading){count, before + (after - before) / 2};
        }
    }
    return best;
}

static void pm_timer(void) {
    const uint8_t* fadt = (const uint8_t*)acpi_find_table("FACP", 0);
    if (!report(fadt != NULL, "FADT present"))
        return;
    uint16_t port = (uint16_t) * (const uint32_t*)(fadt + FADT_PM_TMR_BLK);
    uint8_t length = fadt[FADT_PM_TMR_LEN];
    bool wide = *(const uint32_t*)(fadt + FADT_FLAGS) & FADT_FLAG_TMR_VAL_EXT;
    if (!report(port != 0 && length == 4, "FADT: PM timer at port %#x, length %u", port, length))
        return;
    uint32_t mask = wide ? 0xffffffffu : 0xffffffu;
    struct pm_reading first = pm_read(port, mask);
    wait_us(200000);
    struct pm_reading last = pm_read(port, mask);
    uint64_t elapsed_us = (last.tsc - first.tsc) * 1000 / tsc_khz();
    uint64_t counted = (last.count - first.count) & mask;
    uint64_t expected = elapsed_us * PM_TIMER_HZ / 1000000;
    printf("PM timer: %lu counts in %lu us (expected %lu), %s bits\n", counted, elapsed_us,
           expected, wide ? "32" : "24");
    report(within(counted, expected, 2), "PM timer: 3.579545 MHz against the TSC (within 2%%)");
    bool forward = true;
    uint32_t previous = inl(port) & mask;
    for (int i = 0; i < 1000; i++) {
        uint32_t now = inl(port) & mask;
        forward = forward && ((now - previous) & mask) < (mask >> 1);
        previous = now;
    }
    report(forward, "PM timer: never goes backwards over 1000 reads");
}

int main(void) {
    printf("Vireo guest kit: timers\n");
    if (!tsc_khz())
        report_abort("no TSC frequency (CPUID 0x15, 0x40000010 or kvmclock)");
    report_info("TSC %lu kHz (from %s)", tsc_khz(), tsc_khz_source());
    lapic_enable();
    pit_through_the_ioapic();
    lapic_timer_counts();
    lapic_tsc_deadline();
    pm_timer();
    report(unexpected_interrupts == 0, "no unexpected interrupts (%lu)", unexpected_interrupts);
    report_summary();
}
