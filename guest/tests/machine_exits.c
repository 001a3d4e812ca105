/*
 * machine_exits: drives the machine into one way of ending (or of hanging),
 * chosen by vireo.action=<name>, so that a test can check how the VMM reports
 * it. Prints "READY" just before the action. An action that should have ended
 * the VM and did not is a FAIL (exit status 3).
 *
 *   reset_i8042        0xfe to port 0x64 (pulse the reset line)
 *   triple_fault       an empty IDT, then an exception in ring 0
 *   emulation_failure  pxor (SSE2) in ring 0 on an address without RAM, which
 *                      KVM must emulate and cannot; prints its address and
 *                      bytes first: "INSN <addr> <bytes>"
 *   stuck_in_ring0     a ring-0 loop with interrupts off: never exits KVM_RUN
 *   spin               a ring-3 loop printing "tick <n> count <c>" every ~100 ms, forever
 *   power_button       waits for the ACPI power button (SCI through the IOAPIC),
 *                      clears PWRBTN_STS, then powers off through ACPI S5
 *                      (vireo.wait_s=N: give up after N seconds, default 60)
 *   rtc                prints the CMOS clock, read in BCD and in binary mode:
 *                      "RTC <mode> YYYY-MM-DD hh:mm:ss" (UTC), then a SUMMARY
 */
#include "acpi.h"
#include "cmdline.h"
#include "io.h"
#include "ioapic.h"
#include "lapic.h"
#include "printf.h"
#include "report.h"
#include "ring0.h"
#include "string.h"
#include "trap.h"
#include "tsc.h"

static void ready(const char* what) {
    printf("READY: %s\n", what);
}

/* Reached only when the action did not end the machine. */
static void still_running(const char* action) {
    delay_us(200000);
    report(false, "%s: the machine is still running", action);
    report_summary();
}

/* ---- reset_i8042 ---- */

static void reset_i8042(void) {
    ready("writing 0xfe to port 0x64");
    outb(0x64, 0xfe);
    still_running("reset_i8042");
}

/* ---- triple_fault ---- */

/* With an IDT limit of 0, the #UD cannot be delivered (#GP), nor can that
 * (#DF): the CPU shuts down. Interrupts are off inside a ring-0 call. */
static uint64_t load_empty_idt_and_fault(uint64_t arg) {
    (void)arg;
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty = {0, 0};
    asm volatile("lidt %0\n\tud2" ::"m"(empty) : "memory");
    return 0;
}

static void triple_fault(void) {
    ready("empty IDT, then ud2 in ring 0");
    ring0_call(load_empty_idt_and_fault, 0);
    still_running("triple_fault");
}

/* ---- emulation_failure ---- */

/* An address with neither RAM nor a device behind it: the last page of the
 * PCI MMIO window, which BAR assignment fills from the bottom. */
#define NOTHING_THERE 0xdffff000u

/* Sets CR4.OSFXSR (else the SSE instruction is an architectural #UD), then
 * executes pxor with its memory operand at an address that is not RAM. The
 * CPU leaves the guest for KVM to emulate the access, and KVM's instruction
 * emulator has no pxor on any host (real, nested or emulated): in ring 0 it
 * reports an emulation failure to the VMM. Written in assembly so the
 * instruction has a known address and encoding. */
uint64_t sse_in_ring0(uint64_t arg);
extern const uint8_t sse_insn[], sse_insn_end[];
asm(".pushsection .text\n"
    ".globl sse_in_ring0\n"
    "sse_in_ring0:\n\t"
    "movq %cr4, %rax\n\t"
    "orq $0x200, %rax\n\t" /* OSFXSR */
    "movq %rax, %cr4\n"
    "sse_insn:\n\t"
    "pxor (%rdi), %xmm1\n" /* arg: NOTHING_THERE */
    "sse_insn_end:\n\t"
    "xorl %eax, %eax\n\t"
    "ret\n"
    ".popsection\n");

static void emulation_failure(void) {
    printf("INSN %#lx", (uint64_t)sse_insn);
    for (const uint8_t* p = sse_insn; p < sse_insn_end; p++)
        printf(" %02x", *p);
    printf("\n");
    ready("pxor from an address without RAM, in ring 0");
    ring0_call(sse_in_ring0, NOTHING_THERE);
    still_running("emulation_failure");
}

/* ---- stuck_in_ring0 ---- */

/* Interrupts off and a tight loop: the vCPU never leaves KVM_RUN by itself
 * (no exit reaches the VMM), so only the VMM's kick can take it out. */
static uint64_t spin_with_interrupts_off(uint64_t arg) {
    (void)arg;
    for (;;)
        asm volatile("cli\n\tpause" ::: "memory");
    return 0;
}

static void stuck_in_ring0(void) {
    ready("spinning in ring 0 with interrupts off");
    ring0_call(spin_with_interrupts_off, 0);
    still_running("stuck_in_ring0");
}

/* ---- spin ---- */

static void spin(void) {
    ready("spinning in ring 3");
    uint64_t count = 0, tick = 0, next = time_us() + 100000;
    for (;;) {
        count++;
        uint64_t now = time_us();
        if (now >= next) {
            printf("tick %lu count %lu\n", ++tick, count);
            /* From now, not from `next`: no burst of ticks after a pause. */
            next = now + 100000;
        }
    }
}

/* ---- power_button ---- */

/* FADT fields (ACPI 6.5, table 5.9), byte offsets. */
#define FADT_SCI_INT 46
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1_EVT_LEN 88
#define PM1_PWRBTN (1u << 8)
#define SCI_VECTOR 0x30
#define IOAPIC_LEVEL_HIGH 0x8000 /* level-triggered (bit 15), active high (bit 13 clear) */
#define IOAPIC_REMOTE_IRR 0x4000

static uint16_t pm1a_evt;
static volatile uint64_t sci_count;
static volatile uint16_t sci_status;

/* Level-triggered: the line stays up until PWRBTN_STS is cleared, so clear
 * it before the EOI or the interrupt comes straight back. */
static void sci_handler(struct trap_frame* f) {
    (void)f;
    uint16_t status = inw(pm1a_evt);
    if (!sci_count)
        sci_status = status;
    sci_count++;
    outw(pm1a_evt, status & PM1_PWRBTN);
    lapic_eoi();
}

/* report(), remembering any failure: power off only if everything passed. */
static bool all_ok = true;
static bool check_result(bool cond) {
    all_ok = all_ok && cond;
    return cond;
}
#define check(cond, ...) check_result(report((cond), __VA_ARGS__))

static void power_button(void) {
    const uint8_t* fadt = (const uint8_t*)acpi_find_table("FACP", 0);
    if (!check(fadt != NULL, "FADT present"))
        report_summary();
    uint16_t sci = *(const uint16_t*)(fadt + FADT_SCI_INT);
    pm1a_evt = (uint16_t) * (const uint32_t*)(fadt + FADT_PM1A_EVT_BLK);
    uint8_t evt_len = fadt[FADT_PM1_EVT_LEN];
    check(sci == 9, "FADT SCI_INT is %u (expected 9)", sci);
    if (!check(pm1a_evt != 0 && evt_len == 4, "FADT PM1a_EVT_BLK %#x, PM1_EVT_LEN %u", pm1a_evt,
               evt_len))
        report_summary();
    uint32_t flags;
    uint32_t gsi = acpi_isa_irq_gsi(sci, &flags);
    check(flags == IOAPIC_LEVEL_HIGH,
          "SCI: GSI %u, level-triggered and active high (IOAPIC flags %#x)", gsi, flags);

    trap_set_handler(SCI_VECTOR, sci_handler);
    lapic_enable();
    outw(pm1a_evt, PM1_PWRBTN); /* nothing stale */
    ioapic_route(gsi, SCI_VECTOR, lapic_id(), flags);
    outw(pm1a_evt + 2, PM1_PWRBTN);
    check((inw(pm1a_evt + 2) & PM1_PWRBTN) != 0, "PWRBTN_EN reads back set");
    delay_us(20000);
    check(sci_count == 0 && !(inw(pm1a_evt) & PM1_PWRBTN), "no SCI before the button is pressed");

    ready("waiting for the power button");
    uint64_t wait_s = cmdline_u64("vireo.wait_s", 60);
    uint64_t deadline = time_us() + wait_s * 1000000;
    while (!sci_count && time_us() < deadline)
        cpu_relax();
    if (!check(sci_count > 0, "SCI arrived"))
        report_summary();
    /* A level that did not drop after the clear would keep interrupting. */
    delay_us(50000);
    uint64_t settled = sci_count;
    delay_us(50000);
    printf("power button: PM1a status %#x in the SCI handler, %lu SCI(s)\n", sci_status, settled);
    check((sci_status & PM1_PWRBTN) != 0, "PWRBTN_STS was set in PM1a status (%#x)", sci_status);
    check(!(inw(pm1a_evt) & PM1_PWRBTN), "PWRBTN_STS clear after writing 1 to it");
    /* Not "exactly one": the nested KVM here (and QEMU on it) delivers a
     * level-triggered IOAPIC interrupt twice; the second finds PM1 status clear. */
    check(sci_count == settled && settled <= 2,
          "the SCI stopped once the status was cleared (%lu SCIs)", settled);
    check(!(ioapic_read(0x10 + 2 * gsi) & IOAPIC_REMOTE_IRR),
          "IOAPIC pin %u: remote IRR clear (the EOI was taken, no level pending)", gsi);
    if (!all_ok)
        report_summary();
    printf("Powering off (ACPI S5).\n");
    acpi_poweroff();
    still_running("power_button");
}

/* ---- rtc ---- */

#define RTC_INDEX 0x70
#define RTC_DATA 0x71
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_A_UIP 0x80
#define RTC_B_24H 0x02
#define RTC_B_BINARY 0x04
#define RTC_CENTURY 0x32

struct rtc_time {
    unsigned year, month, day, hour, minute, second;
};

static uint8_t cmos_read(uint8_t reg) {
    outb(RTC_INDEX, reg);
    return inb(RTC_DATA);
}

static void cmos_write(uint8_t reg, uint8_t value) {
    outb(RTC_INDEX, reg);
    outb(RTC_DATA, value);
}

static unsigned from_bcd(uint8_t v, bool binary) {
    return binary ? v : (v >> 4) * 10 + (v & 0xf);
}

static void rtc_read_once(struct rtc_time* t) {
    while (cmos_read(RTC_REG_A) & RTC_A_UIP)
        cpu_relax();
    uint8_t b = cmos_read(RTC_REG_B);
    bool binary = b & RTC_B_BINARY;
    t->second = from_bcd(cmos_read(0x00), binary);
    t->minute = from_bcd(cmos_read(0x02), binary);
    uint8_t hour = cmos_read(0x04);
    bool pm = !(b & RTC_B_24H) && (hour & 0x80);
    t->hour = from_bcd(hour & 0x7f, binary);
    if (!(b & RTC_B_24H))
        t->hour = t->hour % 12 + (pm ? 12 : 0);
    t->day = from_bcd(cmos_read(0x07), binary);
    t->month = from_bcd(cmos_read(0x08), binary);
    unsigned century = from_bcd(cmos_read(RTC_CENTURY), binary);
    t->year = (century ? century : 20) * 100 + from_bcd(cmos_read(0x09), binary);
}

/* Two equal reads in a row, as Linux does: no update happened in between. */
static void rtc_read(struct rtc_time* t) {
    struct rtc_time again;
    rtc_read_once(t);
    for (int i = 0; i < 10; i++) {
        rtc_read_once(&again);
        if (!memcmp(t, &again, sizeof(again)))
            return;
        *t = again;
    }
}

static bool rtc_sane(const struct rtc_time* t) {
    return t->year >= 2000 && t->year < 2200 && t->month >= 1 && t->month <= 12 && t->day >= 1 &&
           t->day <= 31 && t->hour < 24 && t->minute < 60 && t->second < 60;
}

static void rtc_print(const char* mode, const struct rtc_time* t) {
    printf("RTC %s %04u-%02u-%02u %02u:%02u:%02u\n", mode, t->year, t->month, t->day, t->hour,
           t->minute, t->second);
}

static uint64_t rtc_seconds_of_day(const struct rtc_time* t) {
    return t->hour * 3600 + t->minute * 60 + t->second;
}

static void rtc(void) {
    ready("reading the CMOS clock");
    uint8_t b = cmos_read(RTC_REG_B);
    printf("INFO: register B %#x (%s, %s)\n", b, (b & RTC_B_BINARY) ? "binary" : "BCD",
           (b & RTC_B_24H) ? "24-hour" : "12-hour");
    struct rtc_time bcd, binary;
    cmos_write(RTC_REG_B, (uint8_t)((b & ~RTC_B_BINARY) | RTC_B_24H));
    rtc_read(&bcd);
    rtc_print("bcd", &bcd);
    cmos_write(RTC_REG_B, (uint8_t)(b | RTC_B_BINARY | RTC_B_24H));
    rtc_read(&binary);
    rtc_print("binary", &binary);
    cmos_write(RTC_REG_B, b);
    report(cmos_read(RTC_REG_B) == b, "register B restored");
    report(rtc_sane(&bcd), "BCD reading is a valid date and time");
    report(rtc_sane(&binary), "binary reading is a valid date and time");
    uint64_t s0 = rtc_seconds_of_day(&bcd), s1 = rtc_seconds_of_day(&binary);
    report(bcd.year == binary.year && bcd.month == binary.month &&
               (bcd.day == binary.day ? s1 - s0 <= 2 : s1 + 86400 - s0 <= 2),
           "BCD and binary readings agree");
    report_summary();
}

int main(void) {
    char action[32];
    printf("Vireo guest kit: machine_exits\n");
    if (!cmdline_get("vireo.action", action, sizeof(action)))
        report_abort("no vireo.action= on the command line");
    static const struct {
        const char* name;
        void (*run)(void);
    } actions[] = {
        {"reset_i8042", reset_i8042},
        {"triple_fault", triple_fault},
        {"emulation_failure", emulation_failure},
        {"stuck_in_ring0", stuck_in_ring0},
        {"spin", spin},
        {"power_button", power_button},
        {"rtc", rtc},
    };
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (!strcmp(action, actions[i].name)) {
            actions[i].run();
            return 1;
        }
    }
    report_abort("unknown vireo.action=%s", action);
}
