#include "devices/pci/pci_root.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo {
namespace {

// A function with a 4 KiB 32-bit BAR 0 and a 64 KiB 64-bit BAR 2. Its BARs
// answer reads with 0xA0 + BAR index and record writes.
class TestFunction : public PciDevice {
public:
    TestFunction()
        : config_(PciIds{.vendor_id = 0x1234, .device_id = 0x5678, .class_code = 0x020000}) {
        for (const PciBar& bar : bars()) {
            config_.add_bar(bar);
        }
    }
    void config_read(uint32_t offset, std::span<uint8_t> data) override {
        config_.read(offset, data);
    }
    void config_write(uint32_t offset, std::span<const uint8_t> data) override {
        config_.write(offset, data);
    }
    std::vector<PciBar> bars() const override {
        return {PciBar{.index = 0, .size = 0x1000},
                PciBar{.index = 2, .size = 0x10000, .is_64bit = true}};
    }
    void bar_read(uint8_t bar, uint64_t offset, std::span<uint8_t> data) override {
        last_read = {bar, offset};
        std::fill(data.begin(), data.end(), static_cast<uint8_t>(0xa0 + bar));
    }
    void bar_write(uint8_t bar, uint64_t offset, std::span<const uint8_t>) override {
        writes.push_back({bar, offset});
    }
    void bar_moved(uint8_t bar, std::optional<uint64_t> address) override {
        moves.push_back({bar, address});
    }

    std::pair<uint8_t, uint64_t> last_read{0xff, 0};
    std::vector<std::pair<uint8_t, uint64_t>> writes;
    std::vector<std::pair<uint8_t, std::optional<uint64_t>>> moves;

private:
    PciConfigSpace config_;
};

class PciRootTest : public ::testing::Test {
protected:
    PciRootTest() {
        pio.insert(x86::kPciConfigAddressPort, PciConfigIo::kSize,
                   std::make_shared<PciConfigIo>(root));
        mmio.insert(x86::kPciEcamStart, x86::kPciEcamSize, std::make_shared<PciConfigMmio>(root));
    }

    // Mechanism #1.
    uint32_t cf8_read(uint8_t slot, uint8_t function, uint32_t reg, size_t size = 4) {
        port_write32(0xcf8, 0x8000'0000u | slot << 11 | function << 8 | (reg & 0xfc));
        uint32_t value = 0;
        pio.read(0xcfc + (reg & 3), {reinterpret_cast<uint8_t*>(&value), size});
        return value;
    }
    void cf8_write(uint8_t slot, uint8_t function, uint32_t reg, uint32_t value, size_t size = 4) {
        port_write32(0xcf8, 0x8000'0000u | slot << 11 | function << 8 | (reg & 0xfc));
        pio.write(0xcfc + (reg & 3), {reinterpret_cast<const uint8_t*>(&value), size});
    }
    void port_write32(uint16_t port, uint32_t value) {
        pio.write(port, {reinterpret_cast<const uint8_t*>(&value), 4});
    }
    // ECAM.
    uint32_t ecam_read(uint8_t slot, uint8_t function, uint32_t reg, size_t size = 4) {
        uint32_t value = 0;
        mmio.read(x86::kPciEcamStart + (slot << 15 | function << 12 | reg),
                  {reinterpret_cast<uint8_t*>(&value), size});
        return value;
    }
    void ecam_write(uint8_t slot, uint8_t function, uint32_t reg, uint32_t value, size_t size = 4) {
        mmio.write(x86::kPciEcamStart + (slot << 15 | function << 12 | reg),
                   {reinterpret_cast<const uint8_t*>(&value), size});
    }
    // True when some device answers at `address` on the MMIO bus.
    bool decodes(uint64_t address) {
        uint32_t value = 0;
        return mmio.read(address, {reinterpret_cast<uint8_t*>(&value), 4});
    }

    Bus pio{"pio"};
    Bus mmio{"mmio"};
    std::shared_ptr<PciRoot> root =
        std::make_shared<PciRoot>(mmio, x86::kPciMmioStart, x86::kPciMmioSize);
};

TEST_F(PciRootTest, HostBridgeThroughMechanism1) {
    EXPECT_EQ(cf8_read(0, 0, 0x00), 0x0008'1b36u);
    EXPECT_EQ(cf8_read(0, 0, 0x08) >> 8, 0x060000u);
    // The address register reads back as written (less the reserved bits).
    port_write32(0xcf8, 0x8000'0810);
    uint32_t address = 0;
    pio.read(0xcf8, {reinterpret_cast<uint8_t*>(&address), 4});
    EXPECT_EQ(address, 0x8000'0810u);
}

TEST_F(PciRootTest, DataPortHonoursByteAndWordOffsets) {
    EXPECT_EQ(root->add_device(std::make_shared<TestFunction>()), 1);
    EXPECT_EQ(cf8_read(1, 0, 0x00, 2), 0x1234u);
    EXPECT_EQ(cf8_read(1, 0, 0x02, 2), 0x5678u);
    EXPECT_EQ(cf8_read(1, 0, 0x01, 1), 0x12u);
    EXPECT_EQ(cf8_read(1, 0, 0x03, 1), 0x56u);
    EXPECT_EQ(cf8_read(1, 0, 0x0b, 1), 0x02u);  // class
    cf8_write(1, 0, 0x3c, 0x0a, 1);
    EXPECT_EQ(cf8_read(1, 0, 0x3c, 1), 0x0au);
}

TEST_F(PciRootTest, DisabledAddressOrAbsentFunctionsReadAllOnes) {
    root->add_device(std::make_shared<TestFunction>());
    port_write32(0xcf8, 1 << 11);  // slot 1, enable bit clear
    uint32_t value = 0;
    pio.read(0xcfc, {reinterpret_cast<uint8_t*>(&value), 4});
    EXPECT_EQ(value, 0xffff'ffffu);
    EXPECT_EQ(cf8_read(2, 0, 0x00), 0xffff'ffffu);  // empty slot
    EXPECT_EQ(cf8_read(1, 1, 0x00), 0xffff'ffffu);  // function 1 of a single-function device
    EXPECT_EQ(cf8_read(31, 7, 0x00), 0xffff'ffffu);
    port_write32(0xcf8, 0x8001'0000);  // bus 1
    pio.read(0xcfc, {reinterpret_cast<uint8_t*>(&value), 4});
    EXPECT_EQ(value, 0xffff'ffffu);
    EXPECT_EQ(ecam_read(2, 0, 0x00), 0xffff'ffffu);
    EXPECT_EQ(ecam_read(1, 3, 0x00), 0xffff'ffffu);
    // Writes to absent functions go nowhere (and do not crash).
    ecam_write(9, 0, 0x04, 0xffff'ffff);
    cf8_write(9, 0, 0x04, 0xffff'ffff);
}

TEST_F(PciRootTest, EcamDecodesDeviceFunctionAndRegister) {
    root->add_device(std::make_shared<TestFunction>());
    EXPECT_EQ(ecam_read(0, 0, 0x00), 0x0008'1b36u);
    EXPECT_EQ(ecam_read(1, 0, 0x00), 0x5678'1234u);
    EXPECT_EQ(ecam_read(1, 0, 0x02, 2), 0x5678u);
    EXPECT_EQ(ecam_read(1, 0, 0x100), 0u);  // extended space of a conventional function
    ecam_write(1, 0, 0x3c, 0x05, 1);
    EXPECT_EQ(cf8_read(1, 0, 0x3c, 1), 0x05u);  // both front ends see one space
}

TEST_F(PciRootTest, AssignsNaturallyAlignedBarsInTheWindowAndMapsThem) {
    auto function = std::make_shared<TestFunction>();
    root->add_device(function);
    uint64_t bar0 = ecam_read(1, 0, 0x10) & ~0xfu;
    uint64_t bar2 = (ecam_read(1, 0, 0x18) & ~0xfu) | uint64_t{ecam_read(1, 0, 0x1c)} << 32;
    EXPECT_EQ(ecam_read(1, 0, 0x18) & 0x6, 0x4u);  // 64-bit type bits survive
    for (auto [address, size] : {std::pair{bar0, 0x1000ull}, std::pair{bar2, 0x10000ull}}) {
        EXPECT_GE(address, x86::kPciMmioStart);
        EXPECT_LE(address + size, x86::kPciMmioStart + x86::kPciMmioSize);
        EXPECT_EQ(address % size, 0u);
    }
    EXPECT_NE(ecam_read(1, 0, 0x04, 2) & pci::kCommandMemorySpace, 0u);
    EXPECT_EQ(root->bar_mapping(1, 0), bar0);
    EXPECT_EQ(root->bar_mapping(1, 2), bar2);

    uint32_t value = 0;
    ASSERT_TRUE(mmio.read(bar2 + 0x10, {reinterpret_cast<uint8_t*>(&value), 4}));
    EXPECT_EQ(value, 0xa2a2'a2a2u);
    EXPECT_EQ(function->last_read, (std::pair<uint8_t, uint64_t>{2, 0x10}));
    uint8_t byte = 1;
    mmio.write(bar0 + 0xffc, {&byte, 1});
    EXPECT_EQ(function->writes.back(), (std::pair<uint8_t, uint64_t>{0, 0xffc}));
}

TEST_F(PciRootTest, BarSizingThroughConfigAccesses) {
    root->add_device(std::make_shared<TestFunction>());
    uint32_t command = ecam_read(1, 0, 0x04, 2);
    ecam_write(1, 0, 0x04, command & ~pci::kCommandMemorySpace, 2);
    uint32_t saved = ecam_read(1, 0, 0x10);
    ecam_write(1, 0, 0x10, 0xffff'ffff);
    EXPECT_EQ(ecam_read(1, 0, 0x10), 0xffff'f000u);
    ecam_write(1, 0, 0x18, 0xffff'ffff);
    ecam_write(1, 0, 0x1c, 0xffff'ffff);
    EXPECT_EQ(ecam_read(1, 0, 0x18), 0xffff'0004u);
    EXPECT_EQ(ecam_read(1, 0, 0x1c), 0xffff'ffffu);
    ecam_write(1, 0, 0x10, saved);
    EXPECT_EQ(ecam_read(1, 0, 0x10), saved);
}

TEST_F(PciRootTest, MovingABarMovesItOnTheBus) {
    auto function = std::make_shared<TestFunction>();
    root->add_device(function);
    uint64_t old_address = *root->bar_mapping(1, 0);
    function->moves.clear();
    uint64_t new_address = x86::kPciMmioStart + 0x100'0000;
    cf8_write(1, 0, 0x10, static_cast<uint32_t>(new_address));
    EXPECT_FALSE(decodes(old_address));
    EXPECT_TRUE(decodes(new_address));
    EXPECT_EQ(root->bar_mapping(1, 0), new_address);
    ASSERT_EQ(function->moves.size(), 1u);
    EXPECT_EQ(function->moves[0], (std::pair<uint8_t, std::optional<uint64_t>>{0, new_address}));
    // A move by less than the BAR's size (overlapping its old place) works too.
    cf8_write(1, 0, 0x10, static_cast<uint32_t>(new_address + 0x1000));
    EXPECT_TRUE(decodes(new_address + 0x1000));
    EXPECT_FALSE(decodes(new_address));
}

TEST_F(PciRootTest, MemoryDecodingGatesTheBars) {
    auto function = std::make_shared<TestFunction>();
    root->add_device(function);
    uint64_t bar0 = *root->bar_mapping(1, 0);
    uint64_t bar2 = *root->bar_mapping(1, 2);
    function->moves.clear();
    uint32_t command = ecam_read(1, 0, 0x04, 2);
    ecam_write(1, 0, 0x04, command & ~pci::kCommandMemorySpace, 2);
    EXPECT_FALSE(decodes(bar0));
    EXPECT_FALSE(decodes(bar2));
    EXPECT_EQ(root->bar_mapping(1, 0), std::nullopt);
    EXPECT_EQ(function->moves.size(), 2u);
    EXPECT_EQ(function->moves[0].second, std::nullopt);

    // Moving a BAR while decoding is off changes nothing on the bus until it is on.
    uint64_t moved = x86::kPciMmioStart + 0x200'0000;
    ecam_write(1, 0, 0x10, static_cast<uint32_t>(moved));
    EXPECT_FALSE(decodes(moved));
    ecam_write(1, 0, 0x04, command, 2);
    EXPECT_TRUE(decodes(moved));
    EXPECT_TRUE(decodes(bar2));
    EXPECT_FALSE(decodes(bar0));
}

TEST_F(PciRootTest, RefusesAMoveOntoAnotherRange) {
    auto function = std::make_shared<TestFunction>();
    root->add_device(function);
    uint64_t bar0 = *root->bar_mapping(1, 0);
    uint64_t bar2 = *root->bar_mapping(1, 2);
    function->moves.clear();
    ecam_write(1, 0, 0x10, static_cast<uint32_t>(bar2 + 0x1000));  // inside BAR 2
    EXPECT_EQ(root->bar_mapping(1, 0), bar0);
    EXPECT_TRUE(decodes(bar0));
    EXPECT_TRUE(function->moves.empty());
    // Onto ECAM itself: refused as well.
    ecam_write(1, 0, 0x10, static_cast<uint32_t>(x86::kPciEcamStart));
    EXPECT_EQ(root->bar_mapping(1, 0), bar0);
    uint32_t vendor = ecam_read(1, 0, 0x00);
    EXPECT_EQ(vendor, 0x5678'1234u);
}

TEST_F(PciRootTest, FillsTheBusThenRefuses) {
    for (int slot = 1; slot < PciRoot::kSlots; ++slot) {
        EXPECT_EQ(root->add_device(std::make_shared<TestFunction>()), slot);
    }
    EXPECT_THROW(root->add_device(std::make_shared<TestFunction>()), Error);
}

TEST_F(PciRootTest, RefusesDevicesThatDoNotFitTheWindow) {
    Bus bus("small");
    PciRoot small(bus, 0x1000'0000, 0x10000);
    EXPECT_THROW(small.add_device(std::make_shared<TestFunction>()), Error);
    // Nothing was consumed or mapped by the failed attempt.
    EXPECT_EQ(small.bar_mapping(1, 0), std::nullopt);
}

TEST_F(PciRootTest, DestroyingTheRootUnmapsItsBars) {
    Bus bus("mmio");
    uint64_t bar0 = 0;
    {
        PciRoot local(bus, 0x1000'0000, 0x100000);
        local.add_device(std::make_shared<TestFunction>());
        bar0 = *local.bar_mapping(1, 0);
        uint32_t value = 0;
        EXPECT_TRUE(bus.read(bar0, {reinterpret_cast<uint8_t*>(&value), 4}));
    }
    uint32_t value = 0;
    EXPECT_FALSE(bus.read(bar0, {reinterpret_cast<uint8_t*>(&value), 4}));
}

TEST_F(PciRootTest, FrontEndsOutlivingTheRootReadAllOnes) {
    Bus bus("mmio");
    auto local = std::make_shared<PciRoot>(bus, 0x1000'0000, 0x100000);
    PciConfigMmio ecam(local);
    local.reset();
    uint32_t value = 0;
    ecam.read(0, {reinterpret_cast<uint8_t*>(&value), 4});
    EXPECT_EQ(value, 0xffff'ffffu);
}

}  // namespace
}  // namespace vireo
