/* smp: start every AP from the MADT (INIT-SIPI-SIPI); each reports its APIC ID. */
#include "smp.h"
#include "acpi.h"
#include "cmdline.h"
#include "lapic.h"
#include "printf.h"
#include "report.h"
#include "ring0.h"
#include "tsc.h"

static volatile unsigned arrived;
static volatile uint32_t ap_apic_id[MAX_CPUS];
static volatile uint32_t ap_cpuid_apic_id[MAX_CPUS];

static void ap_main(unsigned index) {
    ap_apic_id[index] = lapic_id();
    ap_cpuid_apic_id[index] = r0_cpuid(1, 0).b >> 24;
    printf("AP %u up: APIC ID %u\n", index, ap_apic_id[index]);
    __atomic_add_fetch(&arrived, 1, __ATOMIC_SEQ_CST);
}

int main(void) {
    printf("Vireo guest kit: smp\n");
    struct madt_info madt;
    if (!acpi_madt(&madt))
        report_abort("no MADT");
    unsigned expected_aps = madt.cpus - 1;
    uint64_t want = cmdline_u64("vireo.cpus", 0);
    if (want)
        report(madt.cpus == want, "MADT lists %u CPUs == vireo.cpus (%lu)", madt.cpus, want);
    else
        report_skip("CPU count: no vireo.cpus on the command line");
    uint32_t bsp = lapic_id();
    printf("BSP: APIC ID %u, starting %u APs\n", bsp, expected_aps);

    uint64_t t0 = time_us();
    unsigned started = smp_start_aps(ap_main, 2000);
    uint64_t end = time_us() + 2000000;
    while (__atomic_load_n(&arrived, __ATOMIC_SEQ_CST) < started && time_us() < end)
        cpu_relax();
    uint64_t elapsed = time_us() - t0;
    report(started == expected_aps, "%u of %u APs started", started, expected_aps);
    report(arrived == expected_aps, "%u APs reported in within the timeout (%lu ms)", arrived,
           elapsed / 1000);

    bool unique = true, listed = true, cpuid_match = true;
    for (unsigned i = 1; i <= arrived && i < MAX_CPUS; i++) {
        uint32_t id = ap_apic_id[i];
        if (id == bsp)
            unique = false;
        for (unsigned j = 1; j < i; j++)
            if (ap_apic_id[j] == id)
                unique = false;
        bool found = false;
        for (unsigned k = 0; k < madt.cpus && k < MAX_CPUS; k++)
            found = found || madt.apic_ids[k] == id;
        listed = listed && found;
        cpuid_match = cpuid_match && ap_cpuid_apic_id[i] == id;
    }
    report(unique, "APIC IDs are unique");
    report(listed, "every AP's APIC ID is in the MADT");
    report(cpuid_match, "every AP's CPUID.1 APIC ID matches its LAPIC ID");
    report_summary();
}
