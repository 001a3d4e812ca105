#include "smp.h"

#include "acpi.h"
#include "cpu.h"
#include "io.h"
#include "lapic.h"
#include "ring0.h"
#include "string.h"
#include "tsc.h"

extern const uint8_t trampoline_start[], trampoline_end[];

/* Hand-over from the BSP to the AP being started (one at a time). */
uint64_t ap_boot_stack;
static volatile uint32_t ap_boot_index;
static volatile int ap_started;
static ap_function ap_fn;

static void ap_user_start(uint64_t index) {
    __atomic_store_n(&ap_started, 1, __ATOMIC_RELEASE);
    ap_fn((unsigned)index);
    r0_halt_forever();
}

/* Ring 0, from boot/entry.S ap_entry64. */
void kernel_init_ap(void) {
    uint32_t index = ap_boot_index;
    cpu_init_ring0(index);
    idt_load();
    percpu[index].apic_id = lapic_id();
    enter_user(ap_user_start, percpu[index].ustack_top - 8, index);
}

static int wait_started(unsigned timeout_ms) {
    uint64_t end = time_us() + (uint64_t)timeout_ms * 1000;
    while (!__atomic_load_n(&ap_started, __ATOMIC_ACQUIRE)) {
        if (time_us() > end)
            return 0;
        cpu_relax();
    }
    return 1;
}

unsigned smp_start_aps(ap_function fn, unsigned timeout_ms) {
    struct madt_info madt;
    if (!acpi_madt(&madt))
        return 0;
    uint32_t bsp = lapic_id();
    percpu[0].apic_id = bsp;
    memcpy((void*)TRAMPOLINE_ADDR, trampoline_start, (size_t)(trampoline_end - trampoline_start));
    ap_fn = fn;
    unsigned started = 0, next = 1;
    unsigned n = madt.cpus < MAX_CPUS ? madt.cpus : MAX_CPUS;
    for (unsigned i = 0; i < n && next < MAX_CPUS; i++) {
        uint32_t id = madt.apic_ids[i];
        if (id == bsp || id > 0xfe)
            continue; /* xAPIC ICR addresses 8-bit IDs */
        ap_boot_index = next;
        ap_boot_stack = (uint64_t)&kstacks[next][KSTACK_SIZE];
        ap_started = 0;
        mb();
        lapic_send_ipi(id, ICR_INIT | ICR_LEVEL_ASSERT);
        delay_us(10000);
        lapic_send_ipi(id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
        delay_us(200);
        lapic_send_ipi(id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
        if (wait_started(timeout_ms)) {
            started++;
            next++;
        }
    }
    return started;
}

unsigned smp_cpu_index(void) {
    return this_cpu()->index;
}

uint32_t smp_apic_id(void) {
    return this_cpu()->apic_id;
}
