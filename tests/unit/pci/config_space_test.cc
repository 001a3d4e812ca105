#include "devices/pci/config_space.h"

#include <gtest/gtest.h>

#include <array>

#include "base/error.h"

namespace vireo {
namespace {

PciIds test_ids() {
    return PciIds{.vendor_id = 0x1234,
                  .device_id = 0x5678,
                  .revision_id = 3,
                  .class_code = 0x020000,
                  .subsystem_vendor_id = 0xabcd,
                  .subsystem_id = 0x0042,
                  .interrupt_pin = 1};
}

uint32_t read32(const PciConfigSpace& config, uint32_t offset) {
    uint32_t value = 0;
    config.read(offset, {reinterpret_cast<uint8_t*>(&value), 4});
    return value;
}

uint16_t read16(const PciConfigSpace& config, uint32_t offset) {
    uint16_t value = 0;
    config.read(offset, {reinterpret_cast<uint8_t*>(&value), 2});
    return value;
}

void write32(PciConfigSpace& config, uint32_t offset, uint32_t value) {
    config.write(offset, {reinterpret_cast<const uint8_t*>(&value), 4});
}

TEST(PciConfigSpace, HeaderFieldsAreReadOnly) {
    PciConfigSpace config(test_ids());
    EXPECT_EQ(read32(config, 0x00), 0x5678'1234u);
    EXPECT_EQ(read32(config, 0x08), 0x0200'0003u);  // class, subclass, prog-if, revision
    EXPECT_EQ(read32(config, 0x2c), 0x0042'abcdu);
    uint8_t pin = 0;
    config.read(pci::kInterruptPin, {&pin, 1});
    EXPECT_EQ(pin, 1);

    write32(config, 0x00, 0xffff'ffff);
    write32(config, 0x08, 0xffff'ffff);
    write32(config, 0x2c, 0);
    EXPECT_EQ(read32(config, 0x00), 0x5678'1234u);
    EXPECT_EQ(read32(config, 0x08), 0x0200'0003u);
    EXPECT_EQ(read32(config, 0x2c), 0x0042'abcdu);
}

TEST(PciConfigSpace, CommandRegisterTakesOnlyItsDefinedBits) {
    PciConfigSpace config(test_ids());
    EXPECT_FALSE(config.memory_enabled());
    uint16_t all = 0xffff;
    config.write(pci::kCommand, {reinterpret_cast<const uint8_t*>(&all), 2});
    EXPECT_EQ(read16(config, pci::kCommand), 0x0547);
    EXPECT_TRUE(config.memory_enabled());
    // The interrupt line is the guest's scratch byte.
    uint8_t line = 11;
    config.write(pci::kInterruptLine, {&line, 1});
    uint8_t back = 0;
    config.read(pci::kInterruptLine, {&back, 1});
    EXPECT_EQ(back, 11);
}

TEST(PciConfigSpace, SizesA32BitBar) {
    PciConfigSpace config(test_ids());
    config.add_bar(PciBar{.index = 1, .size = 0x1000, .prefetchable = true});
    EXPECT_EQ(read32(config, 0x14), 0x8u);  // memory, 32-bit, prefetchable
    write32(config, 0x14, 0xffff'ffff);
    EXPECT_EQ(read32(config, 0x14), 0xffff'f008u);
    write32(config, 0x14, 0xc000'1234);
    EXPECT_EQ(read32(config, 0x14), 0xc000'1008u);
    EXPECT_EQ(config.bar_address(1), 0xc000'1000u);
    // Undeclared BARs read 0 and stay 0: the guest sees no BAR there.
    write32(config, 0x10, 0xffff'ffff);
    EXPECT_EQ(read32(config, 0x10), 0u);
    EXPECT_EQ(config.bar_address(0), std::nullopt);
}

TEST(PciConfigSpace, SizesA64BitBar) {
    PciConfigSpace config(test_ids());
    config.add_bar(PciBar{.index = 2, .size = 0x8000, .is_64bit = true});
    EXPECT_EQ(read32(config, 0x18), 0x4u);
    write32(config, 0x18, 0xffff'ffff);
    write32(config, 0x1c, 0xffff'ffff);
    EXPECT_EQ(read32(config, 0x18), 0xffff'8004u);
    EXPECT_EQ(read32(config, 0x1c), 0xffff'ffffu);
    write32(config, 0x18, 0x0008'0000);
    write32(config, 0x1c, 0x1);
    EXPECT_EQ(config.bar_address(2), 0x1'0008'0000u);
}

TEST(PciConfigSpace, SizesABarLargerThan4GiB) {
    PciConfigSpace config(test_ids());
    config.add_bar(
        PciBar{.index = 0, .size = uint64_t{8} << 30, .is_64bit = true, .prefetchable = true});
    write32(config, 0x10, 0xffff'ffff);
    write32(config, 0x14, 0xffff'ffff);
    EXPECT_EQ(read32(config, 0x10), 0x0000'000cu);
    EXPECT_EQ(read32(config, 0x14), 0xffff'fffeu);
}

TEST(PciConfigSpace, RefusesBadBars) {
    PciConfigSpace config(test_ids());
    EXPECT_THROW(config.add_bar(PciBar{.index = 0, .size = 0x1800}), Error);
    EXPECT_THROW(config.add_bar(PciBar{.index = 0, .size = 8}), Error);
    EXPECT_THROW(config.add_bar(PciBar{.index = 5, .size = 0x1000, .is_64bit = true}), Error);
    config.add_bar(PciBar{.index = 0, .size = 0x1000, .is_64bit = true});
    EXPECT_THROW(config.add_bar(PciBar{.index = 1, .size = 0x1000}), Error);
    EXPECT_THROW(config.add_bar(PciBar{.index = 0, .size = 0x1000}), Error);
}

TEST(PciConfigSpace, BuildsACapabilityList) {
    PciConfigSpace config(test_ids());
    EXPECT_EQ(read16(config, pci::kStatus) & pci::kStatusCapabilitiesList, 0);
    std::array<uint8_t, 6> first{0x09, 0xee, 6, 1, 2, 3};
    std::array<uint8_t, 6> writable{0xff, 0xff, 0, 0, 0xff, 0};
    std::array<uint8_t, 12> second{0x11};
    uint8_t a = config.add_capability(first, writable);
    uint8_t b = config.add_capability(second);
    EXPECT_EQ(a, 0x40);
    EXPECT_EQ(b, 0x48);  // dword aligned after the first
    EXPECT_NE(read16(config, pci::kStatus) & pci::kStatusCapabilitiesList, 0);

    // Walk the list as a driver does.
    std::vector<std::pair<uint8_t, uint8_t>> found;
    uint8_t at = 0;
    config.read(pci::kCapabilitiesPointer, {&at, 1});
    while (at != 0) {
        uint8_t header[2];
        config.read(at, header);
        found.push_back({at, header[0]});
        at = header[1];
    }
    EXPECT_EQ(found, (std::vector<std::pair<uint8_t, uint8_t>>{{0x40, 0x09}, {0x48, 0x11}}));

    // Only the bytes marked writable change; ID and next pointer never do.
    std::array<uint8_t, 6> ones;
    ones.fill(0xff);
    config.write(a, ones);
    std::array<uint8_t, 6> back;
    config.read(a, back);
    EXPECT_EQ(back, (std::array<uint8_t, 6>{0x09, 0x48, 6, 1, 0xff, 3}));
}

TEST(PciConfigSpace, RefusesCapabilitiesPastTheHeader) {
    PciConfigSpace config(test_ids());
    std::array<uint8_t, 100> big{0x09};
    config.add_capability(big);
    EXPECT_THROW(config.add_capability(big), Error);
}

TEST(PciConfigSpace, ExtendedSpaceReadsZero) {
    PciConfigSpace config(test_ids());
    write32(config, 0x100, 0x1234'5678);
    EXPECT_EQ(read32(config, 0x100), 0u);
    EXPECT_EQ(read32(config, 0xffc), 0u);
    // Past 4 KiB: nothing, not a crash.
    EXPECT_EQ(read32(config, 0xffe), 0u);
    write32(config, 0xffe, 0xffff'ffff);
}

}  // namespace
}  // namespace vireo
