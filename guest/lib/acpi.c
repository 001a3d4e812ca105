#include "acpi.h"

#include "boot_info.h"
#include "io.h"
#include "ioapic.h"
#include "string.h"
#include "tsc.h"

bool acpi_checksum_ok(const void* p, size_t len) {
    const uint8_t* b = p;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += b[i];
    return sum == 0;
}

static const struct acpi_rsdp* rsdp_at(uint64_t addr) {
    const struct acpi_rsdp* r = (const struct acpi_rsdp*)addr;
    if (memcmp(r->signature, "RSD PTR ", 8) || !acpi_checksum_ok(r, 20))
        return NULL;
    return r;
}

static const struct acpi_rsdp* scan(uint64_t start, uint64_t end) {
    for (uint64_t a = start; a + sizeof(struct acpi_rsdp) <= end; a += 16) {
        const struct acpi_rsdp* r = rsdp_at(a);
        if (r)
            return r;
    }
    return NULL;
}

static const char* rsdp_source = "none";

const struct acpi_rsdp* acpi_rsdp(void) {
    static const struct acpi_rsdp* cached;
    if (cached)
        return cached;
    if (boot_info.rsdp && (cached = rsdp_at(boot_info.rsdp))) {
        rsdp_source = "loader";
        return cached;
    }
    uint64_t ebda = (uint64_t) * (const uint16_t*)0x40e << 4;
    if (ebda >= 0x80000 && ebda < 0xa0000)
        cached = scan(ebda, ebda + 1024);
    if (!cached)
        cached = scan(0xe0000, 0x100000);
    if (cached)
        rsdp_source = "scan";
    return cached;
}

const char* acpi_rsdp_source(void) {
    acpi_rsdp();
    return rsdp_source;
}

static const struct acpi_header* root(unsigned* entry_size) {
    const struct acpi_rsdp* r = acpi_rsdp();
    if (!r)
        return NULL;
    if (r->revision >= 2 && r->xsdt_address) {
        *entry_size = 8;
        return (const struct acpi_header*)r->xsdt_address;
    }
    *entry_size = 4;
    return (const struct acpi_header*)(uint64_t)r->rsdt_address;
}

unsigned acpi_table_count(void) {
    unsigned es;
    const struct acpi_header* h = root(&es);
    if (!h || h->length < sizeof(*h))
        return 0;
    return (h->length - sizeof(*h)) / es;
}

const struct acpi_header* acpi_table(unsigned i) {
    unsigned es;
    const struct acpi_header* h = root(&es);
    if (!h || i >= acpi_table_count())
        return NULL;
    const uint8_t* p = (const uint8_t*)(h + 1) + i * es;
    uint64_t addr = 0;
    memcpy(&addr, p, es);
    return (const struct acpi_header*)addr;
}

const struct acpi_header* acpi_find_table(const char* sig, unsigned n) {
    if (!memcmp(sig, "DSDT", 4)) {
        const struct acpi_header* fadt = acpi_find_table("FACP", 0);
        if (!fadt)
            return NULL;
        const uint8_t* f = (const uint8_t*)fadt;
        uint64_t dsdt = 0;
        if (fadt->length >= FADT_X_DSDT + 8)
            memcpy(&dsdt, f + FADT_X_DSDT, 8);
        if (!dsdt)
            dsdt = *(const uint32_t*)(f + FADT_DSDT);
        return n == 0 ? (const struct acpi_header*)dsdt : NULL;
    }
    unsigned count = acpi_table_count();
    for (unsigned i = 0; i < count; i++) {
        const struct acpi_header* t = acpi_table(i);
        if (t && !memcmp(t->signature, sig, 4) && n-- == 0)
            return t;
    }
    return NULL;
}

/* MADT entries: type, length, then type-specific fields. */
#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_ISO 2
#define MADT_X2APIC 9

bool acpi_madt(struct madt_info* out) {
    memset(out, 0, sizeof(*out));
    const struct acpi_header* h = acpi_find_table("APIC", 0);
    if (!h)
        return false;
    const uint8_t* p = (const uint8_t*)h;
    out->lapic_address = *(const uint32_t*)(p + 36);
    for (uint32_t off = 44; off + 2 <= h->length;) {
        uint8_t type = p[off], len = p[off + 1];
        if (len < 2)
            break;
        const uint8_t* e = p + off;
        if (type == MADT_LAPIC && len >= 8 && (*(const uint32_t*)(e + 4) & 1)) {
            if (out->cpus < MAX_CPUS)
                out->apic_ids[out->cpus] = e[3];
            out->cpus++;
        } else if (type == MADT_X2APIC && len >= 16 && (*(const uint32_t*)(e + 8) & 1)) {
            if (out->cpus < MAX_CPUS)
                out->apic_ids[out->cpus] = *(const uint32_t*)(e + 4);
            out->cpus++;
        } else if (type == MADT_IOAPIC && len >= 12) {
            if (!out->ioapics) {
                out->ioapic_address = *(const uint32_t*)(e + 4);
                out->ioapic_gsi_base = *(const uint32_t*)(e + 8);
            }
            out->ioapics++;
        }
        off += len;
    }
    return true;
}

uint32_t acpi_isa_irq_gsi(uint32_t irq, uint32_t* ioapic_flags) {
    *ioapic_flags = IOAPIC_EDGE_HIGH;
    const struct acpi_header* h = acpi_find_table("APIC", 0);
    if (!h)
        return irq;
    const uint8_t* p = (const uint8_t*)h;
    for (uint32_t off = 44; off + 2 <= h->length;) {
        const uint8_t* e = p + off;
        if (e[1] < 2)
            break;
        if (e[0] == MADT_ISO && e[1] >= 10 && e[3] == irq) {
            uint16_t flags = *(const uint16_t*)(e + 8);
            uint32_t f = 0;
            if ((flags & 3) == 3)
                f |= 1u << 13; /* active low */
            if (((flags >> 2) & 3) == 3)
                f |= 1u << 15; /* level */
            *ioapic_flags = f;
            return *(const uint32_t*)(e + 4);
        }
        off += e[1];
    }
    return irq;
}

/* AML: NameOp(0x08) "_S5_" PackageOp(0x12) PkgLength NumElements, then SLP_TYPa
 * as a ZeroOp/OneOp/OnesOp or BytePrefix(0x0a) byte. */
static int s5_in(const struct acpi_header* t) {
    if (!t || t->length <= sizeof(*t))
        return -1;
    const uint8_t* p = (const uint8_t*)t;
    for (uint32_t i = sizeof(*t); i + 8 < t->length; i++) {
        if (memcmp(p + i, "_S5_", 4) || p[i + 4] != 0x12)
            continue;
        uint32_t j = i + 5;
        j += 1 + (p[j] >> 6); /* PkgLength: lead byte + (bits 7:6) more bytes */
        j++;                  /* NumElements */
        if (j + 1 >= t->length)
            return -1;
        switch (p[j]) {
            case 0x00:
                return 0;
            case 0x01:
                return 1;
            case 0x0a:
                return p[j + 1];
            default:
                return -1;
        }
    }
    return -1;
}

int acpi_s5_sleep_type(void) {
    int t = s5_in(acpi_find_table("DSDT", 0));
    for (unsigned n = 0; t < 0; n++) {
        const struct acpi_header* ssdt = acpi_find_table("SSDT", n);
        if (!ssdt)
            break;
        t = s5_in(ssdt);
    }
    return t;
}

void acpi_poweroff(void) {
    const struct acpi_header* fadt = acpi_find_table("FACP", 0);
    int typ = acpi_s5_sleep_type();
    if (!fadt || typ < 0)
        return;
    const uint8_t* f = (const uint8_t*)fadt;
    uint32_t pm1a = *(const uint32_t*)(f + FADT_PM1A_CNT_BLK);
    uint32_t pm1b = *(const uint32_t*)(f + FADT_PM1B_CNT_BLK);
    if (pm1a) {
        outw((uint16_t)pm1a, (uint16_t)((typ << 10) | (1 << 13)));
        if (pm1b)
            outw((uint16_t)pm1b, (uint16_t)((typ << 10) | (1 << 13)));
    } else if (fadt->length >= FADT_SLEEP_CONTROL_REG + sizeof(struct acpi_gas)) {
        struct acpi_gas g;
        memcpy(&g, f + FADT_SLEEP_CONTROL_REG, sizeof(g));
        uint8_t v = (uint8_t)(((typ & 7) << 2) | (1 << 5)); /* SLP_TYP bits 4:2, SLP_EN bit 5 */
        if (g.space_id == 1 && g.address)
            outb((uint16_t)g.address, v);
        else if (g.space_id == 0 && g.address)
            mmio_write8(g.address, v);
    }
    delay_us(100000);
}
