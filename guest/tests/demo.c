/* demo: the README's first guest. Says hello, shows what it found, powers off (ACPI S5). */
#include "acpi.h"
#include "boot_info.h"
#include "printf.h"

int main(void) {
    struct madt_info madt;
    unsigned cpus = acpi_madt(&madt) ? madt.cpus : 0;
    printf("Hello from a Vireo guest!\n");
    printf("  boot protocol: %s\n", boot_kind_name());
    printf("  CPUs: %u, memory: %lu MiB\n", cpus, boot_ram_bytes() >> 20);
    if (boot_info.cmdline[0])
        printf("  command line: %s\n", boot_info.cmdline);
    printf("Powering off (ACPI S5).\n");
    acpi_poweroff();
    printf("ACPI power-off did not work (no FADT or \\_S5?)\n");
    return 2;
}
