#include "arch/x86/acpi_tables.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "arch/x86/layout.h"
#include "base/error.h"
#include "boot_test_files.h"

namespace vireo::x86 {
namespace {

using boot_test::kMiB;

std::vector<uint8_t> read_bytes(const GuestMemory& memory, uint64_t address, uint64_t size) {
    std::vector<uint8_t> out(size);
    EXPECT_TRUE(memory.read(address, out.data(), size));
    return out;
}

uint8_t sum(std::span<const uint8_t> bytes) {
    uint8_t s = 0;
    for (uint8_t b : bytes) {
        s = static_cast<uint8_t>(s + b);
    }
    return s;
}

class AcpiTables : public ::testing::Test {
protected:
    void write(uint32_t cpus) {
        rsdp_address_ = write_acpi_tables(memory_, {.cpus = cpus});
        rsdp_ = *memory_.read_object<AcpiRsdp>(rsdp_address_);
        auto xsdt = *memory_.read_object<AcpiTableHeader>(rsdp_.xsdt_address);
        tables_.clear();
        for (uint64_t i = 0; i < (xsdt.length - sizeof(AcpiTableHeader)) / 8; ++i) {
            uint64_t address =
                *memory_.read_object<uint64_t>(rsdp_.xsdt_address + sizeof(xsdt) + i * 8);
            auto header = *memory_.read_object<AcpiTableHeader>(address);
            tables_[std::string(header.signature, 4)] = address;
        }
    }

    // The whole table at `address`, checked to lie in the ACPI area.
    std::vector<uint8_t> table(uint64_t address) {
        auto header = *memory_.read_object<AcpiTableHeader>(address);
        EXPECT_GE(address, kAcpiTablesAddress);
        EXPECT_LE(address + header.length, kAcpiTablesAddress + kAcpiTablesSize);
        return read_bytes(memory_, address, header.length);
    }

    GuestMemory memory_ = GuestMemory::create(ram_ranges(64 * kMiB));
    uint64_t rsdp_address_ = 0;
    AcpiRsdp rsdp_{};
    std::map<std::string, uint64_t> tables_;
};

TEST_F(AcpiTables, RsdpIsVersion2WithBothChecksums) {
    write(1);
    EXPECT_EQ(rsdp_address_, kAcpiTablesAddress);
    EXPECT_EQ(rsdp_address_ % 16, 0u) << "found by the legacy scan of 0xE0000..0xFFFFF";
    EXPECT_EQ(std::string(rsdp_.signature, 8), "RSD PTR ");
    EXPECT_EQ(rsdp_.revision, 2);
    EXPECT_EQ(rsdp_.length, 36u);
    auto raw = read_bytes(memory_, rsdp_address_, 36);
    EXPECT_EQ(sum({raw.data(), 20}), 0);
    EXPECT_EQ(sum(raw), 0);
}

TEST_F(AcpiTables, EveryTableChecksumsToZeroAndTheXsdtListsThemAll) {
    write(2);
    EXPECT_EQ(sum(table(rsdp_.xsdt_address)), 0);
    std::set<std::string> names;
    for (const auto& [name, address] : tables_) {
        names.insert(name);
    }
    EXPECT_EQ(names, (std::set<std::string>{"FACP", "APIC", "MCFG"}));
    for (const auto& [name, address] : tables_) {
        EXPECT_EQ(sum(table(address)), 0) << name;
    }
    auto fadt = *memory_.read_object<AcpiFadt>(tables_["FACP"]);
    std::vector<uint8_t> dsdt = table(fadt.x_dsdt);
    EXPECT_EQ(std::string(dsdt.begin(), dsdt.begin() + 4), "DSDT");
    EXPECT_EQ(sum(dsdt), 0);
    auto facs = read_bytes(memory_, fadt.firmware_ctrl, 64);
    EXPECT_EQ(std::string(facs.begin(), facs.begin() + 4), "FACS");
    EXPECT_EQ(fadt.firmware_ctrl % 64, 0u);
    EXPECT_LE(fadt.firmware_ctrl + 64, kAcpiTablesAddress + kAcpiTablesSize);
}

TEST_F(AcpiTables, FadtDescribesTheFixedHardware) {
    write(1);
    auto fadt = *memory_.read_object<AcpiFadt>(tables_["FACP"]);
    EXPECT_EQ(fadt.header.length, 276u);
    EXPECT_GE(fadt.header.revision, 5);
    EXPECT_EQ(fadt.flags & kFadtHardwareReduced, 0u);
    EXPECT_EQ(fadt.flags & kFadtPowerButton, 0u) << "fixed-feature power button present";
    EXPECT_NE(fadt.flags & kFadtResetRegSupported, 0u);
    EXPECT_EQ(fadt.sci_int, 9);
    EXPECT_EQ(fadt.smi_cmd, 0u) << "always in ACPI mode";
    EXPECT_EQ(fadt.pm1a_evt_blk, 0x600u);
    EXPECT_EQ(fadt.pm1_evt_len, 4);
    EXPECT_EQ(fadt.pm1a_cnt_blk, 0x604u);
    EXPECT_EQ(fadt.pm1_cnt_len, 2);
    // The generic addresses are packed and unaligned: compared by value, as
    // EXPECT_EQ would bind a reference to them.
    EXPECT_EQ(uint64_t{fadt.x_pm1a_evt_blk.address}, 0x600u);
    EXPECT_EQ(fadt.x_pm1a_evt_blk.register_bit_width, 32);
    EXPECT_EQ(uint64_t{fadt.x_pm1a_cnt_blk.address}, 0x604u);
    EXPECT_EQ(fadt.x_pm1a_cnt_blk.register_bit_width, 16);
    EXPECT_EQ(fadt.pm_tmr_blk, 0x608u) << "the PM timer";
    EXPECT_EQ(fadt.pm_tmr_len, 4);
    EXPECT_EQ(uint64_t{fadt.x_pm_tmr_blk.address}, 0x608u);
    EXPECT_EQ(fadt.x_pm_tmr_blk.register_bit_width, 32);
    EXPECT_NE(fadt.flags & kFadtTimerValExt, 0u) << "a 32-bit PM timer";
    EXPECT_EQ(fadt.reset_reg.address_space_id, 1) << "system I/O";
    EXPECT_EQ(uint64_t{fadt.reset_reg.address}, 0x64u);
    EXPECT_EQ(fadt.reset_reg.register_bit_width, 8);
    EXPECT_EQ(fadt.reset_value, 0xfe);
    EXPECT_EQ(fadt.iapc_boot_arch & kBootArch8042, 0)
        << "no PS/2 keyboard or mouse to probe; the reset register still resets";
    // A copy: x_dsdt sits at offset 140 of the packed table, misaligned for
    // the reference gtest binds to it.
    const uint64_t x_dsdt = fadt.x_dsdt;
    EXPECT_EQ(x_dsdt, fadt.dsdt);
    EXPECT_NE(x_dsdt, 0u);
}

TEST_F(AcpiTables, MadtHasOneEnabledLocalApicPerCpu) {
    for (uint32_t cpus : {1u, 2u, 64u}) {
        SCOPED_TRACE(cpus);
        write(cpus);
        std::vector<uint8_t> madt = table(tables_["APIC"]);
        AcpiMadtHeader header;
        std::memcpy(&header, madt.data(), sizeof(header));
        EXPECT_EQ(header.local_apic_address, 0xfee00000u);
        EXPECT_EQ(header.flags & kMadtPcatCompat, kMadtPcatCompat);
        std::vector<MadtLocalApic> lapics;
        std::vector<MadtInterruptOverride> overrides;
        std::vector<MadtIoApic> ioapics;
        size_t offset = sizeof(header);
        while (offset < madt.size()) {
            uint8_t type = madt[offset];
            uint8_t length = madt[offset + 1];
            ASSERT_GE(length, 2);
            ASSERT_LE(offset + length, madt.size());
            if (type == 0) {
                ASSERT_EQ(length, sizeof(MadtLocalApic));
                lapics.emplace_back();
                std::memcpy(&lapics.back(), &madt[offset], length);
            } else if (type == 1) {
                ASSERT_EQ(length, sizeof(MadtIoApic));
                ioapics.emplace_back();
                std::memcpy(&ioapics.back(), &madt[offset], length);
            } else if (type == 2) {
                ASSERT_EQ(length, sizeof(MadtInterruptOverride));
                overrides.emplace_back();
                std::memcpy(&overrides.back(), &madt[offset], length);
            }
            offset += length;
        }
        EXPECT_EQ(offset, madt.size());
        ASSERT_EQ(lapics.size(), cpus);
        for (uint32_t i = 0; i < cpus; ++i) {
            EXPECT_EQ(lapics[i].apic_id, i);
            EXPECT_EQ(lapics[i].processor_uid, i);
            EXPECT_EQ(lapics[i].flags & kMadtLocalApicEnabled, kMadtLocalApicEnabled);
        }
        ASSERT_EQ(ioapics.size(), 1u);
        EXPECT_EQ(ioapics[0].io_apic_id, 0);
        EXPECT_EQ(ioapics[0].address, 0xfec00000u);
        EXPECT_EQ(ioapics[0].gsi_base, 0u);
        ASSERT_EQ(overrides.size(), 2u);
        // Copies of gsi: the packed 10-byte entries leave it misaligned for the
        // reference gtest binds to it.
        EXPECT_EQ(overrides[0].source, 0);
        EXPECT_EQ(uint32_t{overrides[0].gsi}, 2u);
        EXPECT_EQ(overrides[1].source, 9);
        EXPECT_EQ(uint32_t{overrides[1].gsi}, 9u);
        EXPECT_EQ(overrides[1].flags, 0x1 | (0x3 << 2)) << "active high, level";
    }
}

TEST_F(AcpiTables, RefusesCpuCountsOutsideTheSupportedRange) {
    EXPECT_THROW(write_acpi_tables(memory_, {.cpus = 0}), Error);
    EXPECT_THROW(write_acpi_tables(memory_, {.cpus = kMaxVcpus + 1}), Error);
}

TEST_F(AcpiTables, McfgCoversBusZeroOfTheEcam) {
    write(1);
    std::vector<uint8_t> mcfg = table(tables_["MCFG"]);
    ASSERT_EQ(mcfg.size(), sizeof(AcpiMcfgHeader) + sizeof(McfgAllocation));
    McfgAllocation allocation;
    std::memcpy(&allocation, mcfg.data() + sizeof(AcpiMcfgHeader), sizeof(allocation));
    EXPECT_EQ(allocation.base_address, kPciEcamStart);
    EXPECT_EQ(allocation.segment, 0);
    EXPECT_EQ(allocation.start_bus, 0);
    EXPECT_EQ(allocation.end_bus, 0);
}

// A reader for the AML subset the DSDT uses; any other opcode fails the test.
class AmlReader {
public:
    explicit AmlReader(std::span<const uint8_t> aml) : aml_(aml) {}

    // Reads a term list up to `end`, recording every name it defines.
    void term_list(size_t end, const std::string& scope) {
        while (pos_ < end) {
            uint8_t op = aml_[pos_++];
            if (op == 0x08) {  // NameOp
                std::string name = join(scope, name_string());
                names.insert(name);
                values[name] = data_object();
            } else if (op == 0x10) {  // ScopeOp
                size_t body_end = package_end();
                term_list(body_end, join(scope, name_string()));
            } else if (op == 0x5b && aml_[pos_] == 0x82) {  // DeviceOp
                ++pos_;
                size_t body_end = package_end();
                std::string name = join(scope, name_string());
                names.insert(name);
                term_list(body_end, name);
            } else {
                ADD_FAILURE() << "unexpected opcode " << int{op} << " at " << pos_ - 1;
                pos_ = end;
            }
            ASSERT_LE(pos_, end) << "a term runs past its enclosing package";
        }
    }

    std::set<std::string> names;
    std::map<std::string, std::vector<uint8_t>> values;  // raw bytes of each named object

private:
    static std::string join(const std::string& scope, const std::string& name) {
        if (name.starts_with("\\")) {
            return name;
        }
        return scope == "\\" ? scope + name : scope + "." + name;
    }

    // Returns the offset where the package that starts here ends.
    size_t package_end() {
        size_t start = pos_;
        uint8_t lead = aml_[pos_++];
        size_t follow = lead >> 6;
        size_t length = follow == 0 ? lead & 0x3f : lead & 0x0f;
        for (size_t i = 0; i < follow; ++i) {
            length |= size_t{aml_[pos_++]} << (4 + 8 * i);
        }
        EXPECT_LE(start + length, aml_.size());
        return start + length;
    }

    std::string name_string() {
        std::string out;
        if (aml_[pos_] == '\\') {
            out = "\\";
            ++pos_;
        }
        size_t segments = 1;
        if (aml_[pos_] == 0x2e) {
            segments = 2;
            ++pos_;
        } else if (aml_[pos_] == 0x2f) {
            segments = aml_[pos_ + 1];
            pos_ += 2;
        }
        for (size_t i = 0; i < segments; ++i) {
            out += (i > 0 ? "." : "") + std::string(aml_.begin() + pos_, aml_.begin() + pos_ + 4);
            pos_ += 4;
        }
        return out;
    }

    std::vector<uint8_t> data_object() {
        size_t start = pos_;
        uint8_t op = aml_[pos_++];
        switch (op) {
            case 0x00:
            case 0x01:
            case 0xff:
                break;
            case 0x0a:
                pos_ += 1;
                break;
            case 0x0b:
                pos_ += 2;
                break;
            case 0x0c:
                pos_ += 4;
                break;
            case 0x0e:
                pos_ += 8;
                break;
            case 0x0d:
                while (aml_[pos_++] != 0) {
                }
                break;
            case 0x11: {  // Buffer: PkgLength, size, bytes (resource descriptors here)
                size_t end = package_end();
                size_t size_start = pos_;
                data_object();
                uint64_t declared = 0;
                std::memcpy(&declared, &aml_[size_start + 1], aml_[size_start] == 0x0a ? 1 : 2);
                EXPECT_EQ(declared, end - pos_) << "buffer size matches its package";
                resource_descriptors(end);
                pos_ = end;
                break;
            }
            case 0x12: {  // Package: PkgLength, count, elements
                size_t end = package_end();
                size_t count = aml_[pos_++];
                for (size_t i = 0; i < count; ++i) {
                    data_object();
                }
                EXPECT_EQ(pos_, end) << "package elements fill the package";
                break;
            }
            default:
                ADD_FAILURE() << "unexpected data opcode " << int{op};
        }
        return {aml_.begin() + start, aml_.begin() + pos_};
    }

    void resource_descriptors(size_t end) {
        size_t p = pos_;
        while (p < end) {
            uint8_t tag = aml_[p];
            if (tag == 0x79) {
                EXPECT_EQ(p + 2, end) << "end tag closes the buffer";
                return;
            }
            if (tag & 0x80) {
                p += 3 + (aml_[p + 1] | (aml_[p + 2] << 8));
            } else {
                p += 1 + (tag & 0x7);
            }
        }
        ADD_FAILURE() << "resource template without an end tag";
    }

    std::span<const uint8_t> aml_;
    size_t pos_ = 0;
};

TEST_F(AcpiTables, DsdtParsesAndHasS5PciRootAndCom1) {
    write(1);
    auto fadt = *memory_.read_object<AcpiFadt>(tables_["FACP"]);
    std::vector<uint8_t> dsdt = table(fadt.x_dsdt);
    std::span<const uint8_t> aml(dsdt.begin() + sizeof(AcpiTableHeader), dsdt.end());
    AmlReader reader(aml);
    reader.term_list(aml.size(), "\\");

    for (const char* name :
         {"\\_S5_", "\\_SB_.PCI0", "\\_SB_.PCI0._HID", "\\_SB_.PCI0._CID", "\\_SB_.PCI0._SEG",
          "\\_SB_.PCI0._BBN", "\\_SB_.PCI0._CRS", "\\_SB_.COM1._HID", "\\_SB_.COM1._CRS"}) {
        EXPECT_TRUE(reader.names.contains(name)) << name;
    }
    // \_S5: Package (4) {SLP_TYPa, SLP_TYPb, 0, 0} with SLP_TYP = kAcpiS5SleepType.
    EXPECT_EQ(reader.values["\\_S5_"],
              std::vector<uint8_t>(
                  {0x12, 0x08, 0x04, 0x0a, kAcpiS5SleepType, 0x0a, kAcpiS5SleepType, 0x00, 0x00}));
    EXPECT_EQ(reader.values["\\_SB_.PCI0._HID"],
              std::vector<uint8_t>({0x0c, 0x41, 0xd0, 0x0a, 0x08}));
    EXPECT_EQ(reader.values["\\_SB_.PCI0._CID"],
              std::vector<uint8_t>({0x0c, 0x41, 0xd0, 0x0a, 0x03}));
    EXPECT_EQ(reader.values["\\_SB_.PCI0._SEG"], std::vector<uint8_t>({0x00}));
    EXPECT_EQ(reader.values["\\_SB_.COM1._HID"],
              std::vector<uint8_t>({0x0c, 0x41, 0xd0, 0x05, 0x01}));

    // The PCI root's resources include the config ports and the 32-bit MMIO window.
    const std::vector<uint8_t>& crs = reader.values["\\_SB_.PCI0._CRS"];
    const std::vector<uint8_t> config_ports = {0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08};
    EXPECT_NE(std::search(crs.begin(), crs.end(), config_ports.begin(), config_ports.end()),
              crs.end());
    std::vector<uint8_t> window = {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0};
    for (uint64_t v :
         {kPciMmioStart, kPciMmioStart + kPciMmioSize - 1, uint64_t{0}, kPciMmioSize}) {
        for (int i = 0; i < 4; ++i) {
            window.push_back(static_cast<uint8_t>(v >> (8 * i)));
        }
    }
    EXPECT_NE(std::search(crs.begin(), crs.end(), window.begin(), window.end()), crs.end());
    const std::vector<uint8_t>& com1 = reader.values["\\_SB_.COM1._CRS"];
    const std::vector<uint8_t> com1_io_irq = {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03,
                                              0x00, 0x08, 0x22, 0x10, 0x00};
    EXPECT_NE(std::search(com1.begin(), com1.end(), com1_io_irq.begin(), com1_io_irq.end()),
              com1.end());
}

// iasl (Debian package acpica-tools) disassembles the DSDT without errors.
TEST_F(AcpiTables, IaslDisassemblesTheDsdt) {
    if (std::system("command -v iasl > /dev/null 2>&1") != 0) {
        GTEST_SKIP() << "iasl not installed (apt-get install acpica-tools)";
    }
    write(4);
    auto fadt = *memory_.read_object<AcpiFadt>(tables_["FACP"]);
    boot_test::TempDir dir;
    std::filesystem::path aml = dir.write("dsdt.aml", table(fadt.x_dsdt));
    std::string command = "cd " + dir.path().string() + " && iasl -d dsdt.aml > iasl.log 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << "see " << dir.path() / "iasl.log";
    std::vector<uint8_t> dsl = boot_test::read_file(dir.path() / "dsdt.dsl");
    std::string text(dsl.begin(), dsl.end());
    EXPECT_THAT(text, ::testing::HasSubstr("Name (_S5, Package (0x04)"));
    EXPECT_THAT(text, ::testing::HasSubstr("EisaId (\"PNP0A08\")"));
    EXPECT_THAT(text, ::testing::HasSubstr("Device (COM1)"));
    EXPECT_THAT(text, ::testing::HasSubstr("IRQNoFlags ()"));
    EXPECT_THAT(text, ::testing::HasSubstr("0xC0000000"));
}

}  // namespace
}  // namespace vireo::x86
