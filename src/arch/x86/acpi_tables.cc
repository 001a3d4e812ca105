#include "arch/x86/acpi_tables.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "arch/x86/aml.h"
#include "arch/x86/interrupt_wiring.h"
#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo::x86 {

namespace {

constexpr uint8_t kRsdpRevision = 2;
constexpr uint8_t kXsdtRevision = 1;
constexpr uint8_t kFadtRevision = 6;
constexpr uint8_t kDsdtRevision = 2;  // 64-bit AML integers
constexpr uint8_t kMadtRevision = 5;
constexpr uint8_t kMcfgRevision = 1;
constexpr uint8_t kFacsVersion = 2;
constexpr uint64_t kRsdpChecksummedLength = 20;  // the ACPI 1.0 part

constexpr uint8_t kGasSystemIo = 1;
constexpr uint8_t kGasAccessByte = 1;
constexpr uint8_t kGasAccessWord = 2;
constexpr uint8_t kGasAccessDword = 3;
constexpr uint8_t kPm1EventLength = 4;  // status and enable, 2 bytes each
constexpr uint8_t kPm1ControlLength = 2;
constexpr uint8_t kPmTimerLength = 4;

constexpr uint8_t kMadtTypeLocalApic = 0;
constexpr uint8_t kMadtTypeIoApic = 1;
constexpr uint8_t kMadtTypeInterruptOverride = 2;
constexpr uint8_t kMadtTypeLocalApicNmi = 4;
constexpr uint16_t kMpsConforming = 0;
constexpr uint16_t kMpsActiveHigh = 0x1;
constexpr uint16_t kMpsActiveLow = 0x3;
constexpr uint16_t kMpsEdge = 0x1 << 2;
constexpr uint16_t kMpsLevel = 0x3 << 2;
constexpr uint8_t kAllProcessors = 0xff;
constexpr uint8_t kLint1 = 1;

constexpr uint16_t kPciIoWindowLowEnd = kPciConfigAddressPort - 1;
constexpr uint16_t kPciIoWindowHighStart = 0x0d00;
constexpr uint8_t kPciConfigPortCount = 8;  // 0xcf8..0xcff
constexpr uint8_t kCom1PortCount = 8;

// The ACPI tables area as the guest will see it, filled in host memory first.
class TableArea {
public:
    // Reserves `size` bytes at an `alignment`-aligned offset; returns the guest address.
    uint64_t place(uint64_t size, uint64_t alignment) {
        uint64_t offset = (bytes_.size() + alignment - 1) / alignment * alignment;
        if (offset + size > kAcpiTablesSize) {
            fail("ACPI tables need more than the {} bytes reserved for them", kAcpiTablesSize);
        }
        bytes_.resize(offset + size);
        return kAcpiTablesAddress + offset;
    }
    void put(uint64_t address, const void* data, uint64_t size) {
        std::memcpy(bytes_.data() + (address - kAcpiTablesAddress), data, size);
    }
    // Places a whole table with its header and sets the header's checksum.
    uint64_t add_table(const std::vector<uint8_t>& table, uint64_t alignment = 16) {
        uint64_t address = place(table.size(), alignment);
        put(address, table.data(), table.size());
        uint8_t* start = bytes_.data() + (address - kAcpiTablesAddress);
        start[offsetof(AcpiTableHeader, checksum)] = acpi_checksum({start, table.size()});
        return address;
    }
    const std::vector<uint8_t>& bytes() const { return bytes_; }

private:
    std::vector<uint8_t> bytes_;
};

void copy_id(char* out, const char* id, size_t size) {
    std::memcpy(out, id, size);
}

AcpiTableHeader header(const char (&signature)[5], uint64_t length, uint8_t revision) {
    AcpiTableHeader h{};
    copy_id(h.signature, signature, sizeof(h.signature));
    h.length = static_cast<uint32_t>(length);
    h.revision = revision;
    copy_id(h.oem_id, "VIREO ", sizeof(h.oem_id));
    copy_id(h.oem_table_id, "VIREOVMM", sizeof(h.oem_table_id));
    h.oem_revision = 1;
    copy_id(h.creator_id, "VIRO", sizeof(h.creator_id));
    h.creator_revision = 1;
    return h;
}

template <typename T>
void append(std::vector<uint8_t>& out, const T& value) {
    // resize + memcpy rather than insert(): GCC 12 at -O3 reports a false
    // -Wstringop-overflow for the insert of a freshly allocated vector.
    size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &value, sizeof(T));
}

// A table of header followed by `body`, its header length set.
std::vector<uint8_t> table(const char (&signature)[5], uint8_t revision,
                           const std::vector<uint8_t>& body) {
    std::vector<uint8_t> out(sizeof(AcpiTableHeader) + body.size());
    AcpiTableHeader table_header = header(signature, out.size(), revision);
    std::memcpy(out.data(), &table_header, sizeof(table_header));
    std::copy(body.begin(), body.end(), out.begin() + sizeof(table_header));
    return out;
}

AcpiGas io_register(uint16_t port, uint8_t length, uint8_t access_size) {
    return {kGasSystemIo, static_cast<uint8_t>(length * 8), 0, access_size, port};
}

std::vector<uint8_t> dsdt_aml() {
    using namespace aml;
    return term_list({
        name("_S5", package({integer(kAcpiS5SleepType), integer(kAcpiS5SleepType), integer(0),
                             integer(0)})),
        scope("\\_SB",
              {
                  device("PCI0",
                         {
                             name("_HID", eisa_id("PNP0A08")),
                             name("_CID", eisa_id("PNP0A03")),
                             name("_UID", integer(0)),
                             name("_SEG", integer(0)),
                             name("_BBN", integer(0)),
                             name("_CRS", resource_template({
                                              word_bus_number(0, 0),
                                              io_port(kPciConfigAddressPort, kPciConfigAddressPort,
                                                      1, kPciConfigPortCount),
                                              word_io(0, kPciIoWindowLowEnd),
                                              word_io(kPciIoWindowHighStart, 0xffff),
                                              dword_memory(static_cast<uint32_t>(kPciMmioStart),
                                                           static_cast<uint32_t>(kPciMmioStart +
                                                                                 kPciMmioSize - 1)),
                                          })),
                         }),
                  device("COM1",
                         {
                             name("_HID", eisa_id("PNP0501")),
                             name("_UID", integer(1)),
                             name("_CRS", resource_template({
                                              io_port(kCom1Port, kCom1Port, 0, kCom1PortCount),
                                              irq(kCom1Interrupt.irq),
                                          })),
                         }),
                  // QEMU's pvpanic: Linux's pvpanic-mmio driver binds to this
                  // _HID and reports a kernel panic on the port.
                  device("PEVT",
                         {
                             name("_HID", string("QEMU0001")),
                             name("_UID", integer(0)),
                             name("_CRS", resource_template({
                                              io_port(kPvPanicPort, kPvPanicPort, 1, 1),
                                          })),
                         }),
                  // Motherboard resources: Linux uses ECAM without complaint once
                  // MCFG's window is reserved here (as well as in e820).
                  device("MRES",
                         {
                             name("_HID", eisa_id("PNP0C02")),
                             name("_UID", integer(0)),
                             name("_CRS", resource_template({
                                              memory32_fixed(static_cast<uint32_t>(kPciEcamStart),
                                                             static_cast<uint32_t>(kPciEcamSize)),
                                          })),
                         }),
              }),
    });
}

// MPS INTI flags of an override: "conforms to the bus" for the ISA default
// (edge, active high), explicit otherwise.
uint16_t override_flags(const IsaInterrupt& line) {
    if (line.trigger == Trigger::Edge && line.polarity == Polarity::ActiveHigh) {
        return kMpsConforming;
    }
    return static_cast<uint16_t>(
        (line.polarity == Polarity::ActiveHigh ? kMpsActiveHigh : kMpsActiveLow) |
        (line.trigger == Trigger::Edge ? kMpsEdge : kMpsLevel));
}

std::vector<uint8_t> madt_body(uint32_t cpus) {
    std::vector<uint8_t> body;
    append(body, uint32_t{static_cast<uint32_t>(kLapicStart)});
    append(body, kMadtPcatCompat);
    for (uint32_t i = 0; i < cpus; ++i) {
        append(body,
               MadtLocalApic{kMadtTypeLocalApic, sizeof(MadtLocalApic), static_cast<uint8_t>(i),
                             static_cast<uint8_t>(i), kMadtLocalApicEnabled});
    }
    append(body, MadtIoApic{kMadtTypeIoApic, sizeof(MadtIoApic), 0, 0,
                            static_cast<uint32_t>(kIoApicStart), 0});
    for (const IsaInterrupt& line : kIsaInterrupts) {
        if (line.needs_override()) {
            append(body,
                   MadtInterruptOverride{kMadtTypeInterruptOverride, sizeof(MadtInterruptOverride),
                                         0, line.irq, line.ioapic_pin, override_flags(line)});
        }
    }
    append(body, MadtLocalApicNmi{kMadtTypeLocalApicNmi, sizeof(MadtLocalApicNmi), kAllProcessors,
                                  kMpsConforming, kLint1});
    return body;
}

}  // namespace

uint8_t acpi_checksum(std::span<const uint8_t> bytes) {
    uint8_t sum = 0;
    for (uint8_t b : bytes) {
        sum = static_cast<uint8_t>(sum + b);
    }
    return static_cast<uint8_t>(-sum);
}

uint64_t write_acpi_tables(const GuestMemory& memory, const AcpiConfig& config) {
    if (config.cpus == 0 || config.cpus > kMaxVcpus) {
        fail("ACPI tables: {} vCPUs, supported are 1 to {}", config.cpus, kMaxVcpus);
    }
    TableArea area;
    const uint64_t rsdp_address = area.place(sizeof(AcpiRsdp), 16);

    // The tables the XSDT lists, and the FACS and DSDT the FADT points at.
    AcpiFacs facs{};
    copy_id(facs.signature, "FACS", sizeof(facs.signature));
    facs.length = sizeof(AcpiFacs);
    facs.version = kFacsVersion;
    const uint64_t facs_address = area.place(sizeof(facs), 64);
    area.put(facs_address, &facs, sizeof(facs));

    std::vector<uint8_t> dsdt_body = dsdt_aml();
    const uint64_t dsdt_address = area.add_table(table("DSDT", kDsdtRevision, dsdt_body));

    AcpiFadt fadt{};
    fadt.header = header("FACP", sizeof(AcpiFadt), kFadtRevision);
    fadt.firmware_ctrl = static_cast<uint32_t>(facs_address);
    fadt.dsdt = static_cast<uint32_t>(dsdt_address);
    fadt.x_dsdt = dsdt_address;
    fadt.sci_int = kSciInterrupt.irq;
    // SMI_CMD 0: the machine is always in ACPI mode, nothing to switch.
    fadt.pm1a_evt_blk = kAcpiPm1aEventPort;
    fadt.pm1_evt_len = kPm1EventLength;
    fadt.x_pm1a_evt_blk = io_register(kAcpiPm1aEventPort, kPm1EventLength, kGasAccessWord);
    fadt.pm1a_cnt_blk = kAcpiPm1aControlPort;
    fadt.pm1_cnt_len = kPm1ControlLength;
    fadt.x_pm1a_cnt_blk = io_register(kAcpiPm1aControlPort, kPm1ControlLength, kGasAccessWord);
    fadt.pm_tmr_blk = kAcpiPmTimerPort;
    fadt.pm_tmr_len = kPmTimerLength;
    fadt.x_pm_tmr_blk = io_register(kAcpiPmTimerPort, kPmTimerLength, kGasAccessDword);
    // No 8042 flag: the i8042 here only resets the machine (port 0x64, also
    // the FADT's reset register), it has no keyboard or mouse behind it, and
    // Linux's driver, told of one, spends seconds probing for them.
    fadt.iapc_boot_arch = kBootArchLegacyDevices | kBootArchVgaNotPresent;
    // Power button clear: the fixed-feature power button in PM1 is present.
    fadt.flags = kFadtWbinvd | kFadtProcC1 | kFadtSleepButton | kFadtFixRtc | kFadtTimerValExt |
                 kFadtResetRegSupported;
    fadt.reset_reg = io_register(kI8042Port + 4, 1, kGasAccessByte);
    fadt.reset_value = kAcpiResetValue;
    std::vector<uint8_t> fadt_bytes;
    append(fadt_bytes, fadt);
    const uint64_t fadt_address = area.add_table(fadt_bytes);

    const uint64_t madt_address =
        area.add_table(table("APIC", kMadtRevision, madt_body(config.cpus)));

    std::vector<uint8_t> mcfg_body(sizeof(AcpiMcfgHeader) - sizeof(AcpiTableHeader), 0);
    append(mcfg_body, McfgAllocation{kPciEcamStart, 0, 0, 0, 0});
    const uint64_t mcfg_address = area.add_table(table("MCFG", kMcfgRevision, mcfg_body));

    std::vector<uint8_t> xsdt_body;
    for (uint64_t address : {fadt_address, madt_address, mcfg_address}) {
        append(xsdt_body, address);
    }
    const uint64_t xsdt_address = area.add_table(table("XSDT", kXsdtRevision, xsdt_body));

    AcpiRsdp rsdp{};
    copy_id(rsdp.signature, "RSD PTR ", sizeof(rsdp.signature));
    copy_id(rsdp.oem_id, "VIREO ", sizeof(rsdp.oem_id));
    rsdp.revision = kRsdpRevision;
    rsdp.length = sizeof(AcpiRsdp);
    rsdp.xsdt_address = xsdt_address;
    const auto* raw = reinterpret_cast<const uint8_t*>(&rsdp);
    rsdp.checksum = acpi_checksum({raw, kRsdpChecksummedLength});
    rsdp.extended_checksum = acpi_checksum({raw, sizeof(rsdp)});
    area.put(rsdp_address, &rsdp, sizeof(rsdp));

    if (!memory.write(kAcpiTablesAddress, area.bytes().data(), area.bytes().size())) {
        fail("guest RAM does not cover the ACPI tables at {:#x} ({} bytes)", kAcpiTablesAddress,
             area.bytes().size());
    }
    return rsdp_address;
}

}  // namespace vireo::x86
