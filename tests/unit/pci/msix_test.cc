#include "devices/pci/msix.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "fake_interrupts.h"

namespace vireo {
namespace {

using testing::FakeMsiController;

class MsixTest : public ::testing::Test {
protected:
    MsixTest() { capability = msix.add_capability(config, 2, 0x1000, 0x1800); }

    void write_control(uint16_t control) {
        config.write(capability + 2u, {reinterpret_cast<const uint8_t*>(&control), 2});
        msix.config_written(config);
    }
    void write_entry(uint16_t vector, uint32_t field, uint32_t value) {
        msix.table_write(vector * Msix::kEntrySize + field,
                         {reinterpret_cast<const uint8_t*>(&value), 4});
    }
    uint32_t read_entry(uint16_t vector, uint32_t field) {
        uint32_t value = 0;
        msix.table_read(vector * Msix::kEntrySize + field, {reinterpret_cast<uint8_t*>(&value), 4});
        return value;
    }
    uint64_t pending_bits() {
        uint64_t bits = 0;
        msix.pba_read(0, {reinterpret_cast<uint8_t*>(&bits), 8});
        return bits;
    }

    FakeMsiController controller;
    PciConfigSpace config{PciIds{.vendor_id = 0x1af4}};
    Msix msix{controller, 4};
    uint8_t capability = 0;
};

TEST_F(MsixTest, CapabilityDescribesTableAndPba) {
    EXPECT_EQ(controller.vector_count(), 4u);
    EXPECT_EQ(config.load<uint8_t>(capability), pci::kCapabilityMsix);
    EXPECT_EQ(config.load<uint16_t>(capability + 2u), 3);  // table size - 1, disabled
    EXPECT_EQ(config.load<uint32_t>(capability + 4u), 0x1000u | 2);
    EXPECT_EQ(config.load<uint32_t>(capability + 8u), 0x1800u | 2);
    EXPECT_EQ(msix.table_size(), 64u);
    EXPECT_EQ(msix.pba_size(), 8u);
    // The table size field is read-only.
    write_control(0xffff);
    EXPECT_EQ(config.load<uint16_t>(capability + 2u), 0xc003);
}

TEST_F(MsixTest, ProgrammingAnEntrySetsTheMessage) {
    write_entry(1, 0, 0xfee0'1000);
    write_entry(1, 4, 0);
    write_entry(1, 8, 0x4041);
    auto messages = controller.vector(1).messages();
    ASSERT_FALSE(messages.empty());
    EXPECT_EQ(messages.back(), (MsiMessage{0xfee0'1000, 0x4041}));
    EXPECT_EQ(read_entry(1, 0), 0xfee0'1000u);
    EXPECT_EQ(read_entry(1, 8), 0x4041u);
    EXPECT_EQ(read_entry(1, 12), 1u);  // masked after reset
    // A 64-bit write of address lo/hi counts as one change.
    uint64_t address = 0x1'fee0'2000;
    msix.table_write(2 * Msix::kEntrySize, {reinterpret_cast<const uint8_t*>(&address), 8});
    EXPECT_EQ(controller.vector(2).messages().back().address, 0x1'fee0'2000u);
    // Rewriting the same values is no change.
    size_t before = controller.vector(1).messages().size();
    write_entry(1, 8, 0x4041);
    EXPECT_EQ(controller.vector(1).messages().size(), before);
    // Reserved vector-control bits stay 0.
    write_entry(1, 12, 0xffff'fffe);
    EXPECT_EQ(read_entry(1, 12), 0u);
}

TEST_F(MsixTest, SignalsAreDroppedWhileDisabled) {
    write_entry(0, 12, 0);
    msix.signal(0);
    EXPECT_EQ(controller.vector(0).triggers(), 0);
    EXPECT_EQ(pending_bits(), 0u);
    write_control(Msix::kControlEnable);
    EXPECT_EQ(controller.vector(0).triggers(), 0);  // nothing was held back
}

TEST_F(MsixTest, MaskedVectorsPendUntilUnmasked) {
    write_control(Msix::kControlEnable);
    EXPECT_TRUE(msix.enabled());
    msix.signal(3);  // entries start masked
    EXPECT_EQ(controller.vector(3).triggers(), 0);
    EXPECT_EQ(pending_bits(), 0b1000u);
    write_entry(3, 12, 0);  // unmask: delivered now
    EXPECT_EQ(controller.vector(3).triggers(), 1);
    EXPECT_EQ(pending_bits(), 0u);
    msix.signal(3);
    EXPECT_EQ(controller.vector(3).triggers(), 2);
    msix.signal(99);  // out of range: ignored
}

TEST_F(MsixTest, FunctionMaskHoldsEveryVector) {
    write_control(Msix::kControlEnable | Msix::kControlFunctionMask);
    write_entry(0, 12, 0);
    write_entry(1, 12, 0);
    msix.signal(0);
    msix.signal(1);
    EXPECT_EQ(controller.vector(0).triggers(), 0);
    EXPECT_EQ(pending_bits(), 0b11u);
    write_control(Msix::kControlEnable);
    EXPECT_EQ(controller.vector(0).triggers(), 1);
    EXPECT_EQ(controller.vector(1).triggers(), 1);
    EXPECT_EQ(pending_bits(), 0u);
}

TEST_F(MsixTest, OutOfRangeTableAccessesAreHarmless) {
    uint32_t value = 0xdead;
    msix.table_read(4 * Msix::kEntrySize, {reinterpret_cast<uint8_t*>(&value), 4});
    EXPECT_EQ(value, 0u);
    msix.table_write(4 * Msix::kEntrySize, {reinterpret_cast<const uint8_t*>(&value), 4});
}

TEST(Msix, RefusesBadVectorCounts) {
    FakeMsiController controller;
    EXPECT_THROW(Msix(controller, 0), Error);
    EXPECT_THROW(Msix(controller, 2049), Error);
}

}  // namespace
}  // namespace vireo
