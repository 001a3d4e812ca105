/* smoke: the guest boots, finds its CPUs (MADT) and memory (memory map). */
#include "acpi.h"
#include "boot_info.h"
#include "cmdline.h"
#include "printf.h"
#include "report.h"
#include "tsc.h"

int main(void) {
    printf("Vireo guest kit: smoke\n");
    struct madt_info madt;
    bool have_madt = acpi_madt(&madt);
    uint64_t mem_mib = boot_ram_bytes() >> 20;
    printf("boot: %s, cpus: %u, memory: %lu MiB\n", boot_kind_name(), have_madt ? madt.cpus : 0,
           mem_mib);

    printf("TSC: %lu kHz (%s)\n", tsc_khz(), tsc_khz_source());
    report(have_madt && madt.cpus >= 1, "MADT lists at least one CPU");
    report(boot_info.memmap_entries > 0 && mem_mib > 0, "memory map has RAM");
    uint64_t want_cpus = cmdline_u64("vireo.cpus", 0);
    if (want_cpus)
        report(have_madt && madt.cpus == want_cpus, "cpus == vireo.cpus (%lu)", want_cpus);
    else
        report_skip("CPU count: no vireo.cpus on the command line");
    uint64_t want_mib = cmdline_u64("vireo.mem_mib", 0);
    if (want_mib)
        report(mem_mib <= want_mib && mem_mib + 2 >= want_mib,
               "memory %lu MiB ~ vireo.mem_mib (%lu)", mem_mib, want_mib);
    else
        report_skip("memory size: no vireo.mem_mib on the command line");
    report_summary();
}
