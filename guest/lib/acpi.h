/* ACPI table lookup: RSDP -> XSDT (or RSDT) -> tables; MADT and FADT parsing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../boot/layout.h"

struct acpi_rsdp {
    char signature[8];
    uint8_t checksum;
    char oem_id[6];
    uint8_t revision;
    uint32_t rsdt_address;
    uint32_t length; /* revision >= 2 from here on */
    uint64_t xsdt_address;
    uint8_t extended_checksum;
    uint8_t reserved[3];
} __attribute__((packed));

struct acpi_header {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    uint32_t creator_id;
    uint32_t creator_revision;
} __attribute__((packed));

struct acpi_gas {
    uint8_t space_id; /* 0 memory, 1 I/O */
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
} __attribute__((packed));

/* FADT fields the kit uses (byte offsets per ACPI 6.x). */
#define FADT_DSDT 40
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM1B_CNT_BLK 68
#define FADT_FLAGS 112
#define FADT_X_DSDT 140
#define FADT_SLEEP_CONTROL_REG 244
#define FADT_FLAG_HW_REDUCED_ACPI (1u << 20)

bool acpi_checksum_ok(const void* p, size_t len);

/* The RSDP: from the loader (boot_info.rsdp), else scanned in the EBDA and
 * 0xe0000-0xfffff. NULL if none has a valid v1 checksum. */
const struct acpi_rsdp* acpi_rsdp(void);
/* Where acpi_rsdp() found it: "loader" or "scan". */
const char* acpi_rsdp_source(void);

/* Entries of the XSDT (or RSDT when there is no XSDT). */
unsigned acpi_table_count(void);
const struct acpi_header* acpi_table(unsigned i);
/* The n-th table with this signature (also "DSDT", via the FADT). */
const struct acpi_header* acpi_find_table(const char* signature, unsigned n);

struct madt_info {
    uint32_t lapic_address;
    unsigned cpus; /* enabled Local APIC / x2APIC entries */
    uint32_t apic_ids[MAX_CPUS];
    unsigned ioapics;
    uint32_t ioapic_address; /* of the first IOAPIC */
    uint32_t ioapic_gsi_base;
};
bool acpi_madt(struct madt_info* out);
/* GSI and IOAPIC flags for an ISA IRQ, honouring MADT interrupt source overrides. */
uint32_t acpi_isa_irq_gsi(uint32_t irq, uint32_t* ioapic_flags);

/* SLP_TYPa of \_S5 from the DSDT/SSDTs; -1 if not found. */
int acpi_s5_sleep_type(void);
/* Writes SLP_TYP|SLP_EN to PM1a_CNT (or the HW-reduced sleep control
 * register). Returns only if the machine did not power off. */
void acpi_poweroff(void);
