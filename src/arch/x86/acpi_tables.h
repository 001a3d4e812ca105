#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "memory/guest_memory.h"

// The static ACPI tables of a Vireo x86 machine (ACPI 6.x, chapter 5): RSDP ->
// XSDT -> FADT (-> FACS, DSDT), MADT, MCFG. Packed structs with the spec's
// offsets asserted; all little-endian, as x86 is.
namespace vireo::x86 {

#pragma pack(push, 1)

struct AcpiTableHeader {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    char creator_id[4];
    uint32_t creator_revision;
};

struct AcpiRsdp {
    char signature[8];  // "RSD PTR "
    uint8_t checksum;   // over the first 20 bytes
    char oem_id[6];
    uint8_t revision;  // 2: ACPI 2.0+, with the XSDT
    uint32_t rsdt_address;
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum;  // over all 36 bytes
    uint8_t reserved[3];
};

// Generic Address Structure.
struct AcpiGas {
    uint8_t address_space_id;  // 0 memory, 1 system I/O
    uint8_t register_bit_width;
    uint8_t register_bit_offset;
    uint8_t access_size;  // 1 byte, 2 word, 3 dword, 4 qword
    uint64_t address;
};

struct AcpiFadt {
    AcpiTableHeader header;
    uint32_t firmware_ctrl;
    uint32_t dsdt;
    uint8_t reserved0;
    uint8_t preferred_pm_profile;
    uint16_t sci_int;
    uint32_t smi_cmd;
    uint8_t acpi_enable;
    uint8_t acpi_disable;
    uint8_t s4bios_req;
    uint8_t pstate_cnt;
    uint32_t pm1a_evt_blk;
    uint32_t pm1b_evt_blk;
    uint32_t pm1a_cnt_blk;
    uint32_t pm1b_cnt_blk;
    uint32_t pm2_cnt_blk;
    uint32_t pm_tmr_blk;
    uint32_t gpe0_blk;
    uint32_t gpe1_blk;
    uint8_t pm1_evt_len;
    uint8_t pm1_cnt_len;
    uint8_t pm2_cnt_len;
    uint8_t pm_tmr_len;
    uint8_t gpe0_blk_len;
    uint8_t gpe1_blk_len;
    uint8_t gpe1_base;
    uint8_t cst_cnt;
    uint16_t p_lvl2_lat;
    uint16_t p_lvl3_lat;
    uint16_t flush_size;
    uint16_t flush_stride;
    uint8_t duty_offset;
    uint8_t duty_width;
    uint8_t day_alrm;
    uint8_t mon_alrm;
    uint8_t century;
    uint16_t iapc_boot_arch;
    uint8_t reserved1;
    uint32_t flags;
    AcpiGas reset_reg;
    uint8_t reset_value;
    uint16_t arm_boot_arch;
    uint8_t minor_version;
    uint64_t x_firmware_ctrl;
    uint64_t x_dsdt;
    AcpiGas x_pm1a_evt_blk;
    AcpiGas x_pm1b_evt_blk;
    AcpiGas x_pm1a_cnt_blk;
    AcpiGas x_pm1b_cnt_blk;
    AcpiGas x_pm2_cnt_blk;
    AcpiGas x_pm_tmr_blk;
    AcpiGas x_gpe0_blk;
    AcpiGas x_gpe1_blk;
    AcpiGas sleep_control_reg;
    AcpiGas sleep_status_reg;
    uint64_t hypervisor_vendor_identity;
};

struct AcpiFacs {
    char signature[4];
    uint32_t length;
    uint32_t hardware_signature;
    uint32_t firmware_waking_vector;
    uint32_t global_lock;
    uint32_t flags;
    uint64_t x_firmware_waking_vector;
    uint8_t version;
    uint8_t reserved[3];
    uint32_t ospm_flags;
    uint8_t reserved2[24];
};

struct AcpiMadtHeader {
    AcpiTableHeader header;
    uint32_t local_apic_address;
    uint32_t flags;
};

struct MadtLocalApic {  // type 0
    uint8_t type;
    uint8_t length;
    uint8_t processor_uid;
    uint8_t apic_id;
    uint32_t flags;
};

struct MadtIoApic {  // type 1
    uint8_t type;
    uint8_t length;
    uint8_t io_apic_id;
    uint8_t reserved;
    uint32_t address;
    uint32_t gsi_base;
};

struct MadtInterruptOverride {  // type 2
    uint8_t type;
    uint8_t length;
    uint8_t bus;  // 0: ISA
    uint8_t source;
    uint32_t gsi;
    uint16_t flags;
};

struct MadtLocalApicNmi {  // type 4
    uint8_t type;
    uint8_t length;
    uint8_t processor_uid;  // 0xff: all processors
    uint16_t flags;
    uint8_t lint;
};

struct AcpiMcfgHeader {
    AcpiTableHeader header;
    uint8_t reserved[8];
};

struct McfgAllocation {
    uint64_t base_address;
    uint16_t segment;
    uint8_t start_bus;
    uint8_t end_bus;
    uint32_t reserved;
};

#pragma pack(pop)

static_assert(sizeof(AcpiTableHeader) == 36);
static_assert(sizeof(AcpiRsdp) == 36);
static_assert(offsetof(AcpiRsdp, xsdt_address) == 24);
static_assert(sizeof(AcpiGas) == 12);
static_assert(offsetof(AcpiFadt, firmware_ctrl) == 36);
static_assert(offsetof(AcpiFadt, sci_int) == 46);
static_assert(offsetof(AcpiFadt, pm1a_evt_blk) == 56);
static_assert(offsetof(AcpiFadt, pm1a_cnt_blk) == 64);
static_assert(offsetof(AcpiFadt, pm1_evt_len) == 88);
static_assert(offsetof(AcpiFadt, iapc_boot_arch) == 109);
static_assert(offsetof(AcpiFadt, flags) == 112);
static_assert(offsetof(AcpiFadt, reset_reg) == 116);
static_assert(offsetof(AcpiFadt, reset_value) == 128);
static_assert(offsetof(AcpiFadt, minor_version) == 131);
static_assert(offsetof(AcpiFadt, x_dsdt) == 140);
static_assert(offsetof(AcpiFadt, x_pm1a_evt_blk) == 148);
static_assert(offsetof(AcpiFadt, x_pm1a_cnt_blk) == 172);
static_assert(offsetof(AcpiFadt, sleep_control_reg) == 244);
static_assert(offsetof(AcpiFadt, hypervisor_vendor_identity) == 268);
static_assert(sizeof(AcpiFadt) == 276);
static_assert(sizeof(AcpiFacs) == 64);
static_assert(sizeof(AcpiMadtHeader) == 44);
static_assert(sizeof(MadtLocalApic) == 8);
static_assert(sizeof(MadtIoApic) == 12);
static_assert(sizeof(MadtInterruptOverride) == 10);
static_assert(sizeof(MadtLocalApicNmi) == 6);
static_assert(sizeof(AcpiMcfgHeader) == 44);
static_assert(sizeof(McfgAllocation) == 16);

// FADT flags and IA-PC boot architecture flags (ACPI 6.x, tables 5.10, 5.11).
inline constexpr uint32_t kFadtWbinvd = 1 << 0;
inline constexpr uint32_t kFadtProcC1 = 1 << 2;
inline constexpr uint32_t kFadtPowerButton = 1 << 4;  // set: NO fixed power button
inline constexpr uint32_t kFadtSleepButton = 1 << 5;  // set: no fixed sleep button
inline constexpr uint32_t kFadtFixRtc = 1 << 6;
inline constexpr uint32_t kFadtTimerValExt = 1 << 8;  // the PM timer counts 32 bits, not 24
inline constexpr uint32_t kFadtResetRegSupported = 1 << 10;
inline constexpr uint32_t kFadtHardwareReduced = 1 << 20;
inline constexpr uint16_t kBootArchLegacyDevices = 1 << 0;
inline constexpr uint16_t kBootArch8042 = 1 << 1;
inline constexpr uint16_t kBootArchVgaNotPresent = 1 << 2;
inline constexpr uint32_t kMadtPcatCompat = 1 << 0;
inline constexpr uint32_t kMadtLocalApicEnabled = 1 << 0;
inline constexpr uint8_t kAcpiResetValue = 0xfe;  // i8042 "pulse reset line"

struct AcpiConfig {
    uint32_t cpus = 1;  // 1 .. kMaxVcpus
};

// Writes RSDP, XSDT, FADT, FACS, DSDT, MADT and MCFG inside
// [kAcpiTablesAddress, kAcpiTablesAddress + kAcpiTablesSize), with their
// checksums, and returns the RSDP's address (kAcpiTablesAddress, where a
// legacy scan of 0xE0000..0xFFFFF finds it too). Throws vireo::Error for a CPU
// count outside 1..kMaxVcpus or guest RAM not covering the area.
uint64_t write_acpi_tables(const GuestMemory& memory, const AcpiConfig& config);

// The byte that makes `bytes` sum to zero modulo 256 (with the checksum field at 0).
uint8_t acpi_checksum(std::span<const uint8_t> bytes);

}  // namespace vireo::x86
