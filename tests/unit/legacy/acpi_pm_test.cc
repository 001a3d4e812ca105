#include "devices/legacy/acpi_pm.h"

#include <gtest/gtest.h>

#include "arch/x86/layout.h"
#include "base/error.h"
#include "devices/bus.h"
#include "port_io.h"
#include "recording_irq_line.h"

namespace vireo {
namespace {

constexpr uint64_t kStatus = 0, kEnable = 2, kControl = 4;
constexpr uint16_t kPowerButton = 1 << 8;
constexpr uint16_t kWake = 1 << 15;
constexpr uint16_t kSciEnable = 1 << 0;
constexpr uint16_t kSleepEnable = 1 << 13;

constexpr uint16_t sleep_type(uint16_t type) {
    return static_cast<uint16_t>(type << 10);
}

class AcpiPmTest : public ::testing::Test {
protected:
    std::shared_ptr<RecordingIrqLine> sci = std::make_shared<RecordingIrqLine>();
    int power_offs = 0;
    AcpiPm pm{sci, [this] { ++power_offs; }};

    uint16_t inw(uint64_t offset) { return static_cast<uint16_t>(in_wide(pm, offset, 2)); }
    void outw(uint64_t offset, uint16_t value) { out_wide(pm, offset, 2, value); }
};

TEST_F(AcpiPmTest, AlwaysInAcpiMode) {
    EXPECT_EQ(inw(kControl), kSciEnable);
    outw(kControl, 0);
    EXPECT_EQ(inw(kControl) & kSciEnable, kSciEnable);
}

TEST_F(AcpiPmTest, RejectsMissingSciOrCallback) {
    EXPECT_THROW(AcpiPm(nullptr, [] {}), Error);
    EXPECT_THROW(AcpiPm(sci, nullptr), Error);
}

TEST_F(AcpiPmTest, S5RequestPowersOff) {
    outw(kControl, sleep_type(x86::kAcpiS5SleepType));
    EXPECT_EQ(power_offs, 0);  // SLP_TYP alone does nothing
    EXPECT_EQ(inw(kControl), sleep_type(x86::kAcpiS5SleepType) | kSciEnable);
    outw(kControl, sleep_type(x86::kAcpiS5SleepType) | kSleepEnable);
    EXPECT_EQ(power_offs, 1);
    EXPECT_EQ(inw(kControl) & kSleepEnable, 0);  // write-only
}

TEST_F(AcpiPmTest, S5RequestAsAByteWritePowersOff) {
    outb(pm, kControl + 1, (sleep_type(x86::kAcpiS5SleepType) | kSleepEnable) >> 8);
    EXPECT_EQ(power_offs, 1);
}

TEST_F(AcpiPmTest, OtherSleepTypesWakeAtOnce) {
    outw(kControl, sleep_type(3) | kSleepEnable);
    EXPECT_EQ(power_offs, 0);
    EXPECT_EQ(inw(kStatus) & kWake, kWake);
    EXPECT_FALSE(sci->level());  // WAK_STS is not an SCI source
    outw(kStatus, kWake);
    EXPECT_EQ(inw(kStatus), 0);
}

TEST_F(AcpiPmTest, PowerButtonRaisesSciOnlyWhenEnabled) {
    pm.press_power_button();
    EXPECT_EQ(inw(kStatus), kPowerButton);
    EXPECT_TRUE(sci->levels().empty());
    outw(kEnable, kPowerButton);
    EXPECT_TRUE(sci->level());
    EXPECT_EQ(inw(kEnable), kPowerButton);
    // Disabling lowers the line; the status stays until cleared.
    outw(kEnable, 0);
    EXPECT_FALSE(sci->level());
    EXPECT_EQ(inw(kStatus), kPowerButton);
}

TEST_F(AcpiPmTest, StatusIsWriteOneToClear) {
    outw(kEnable, kPowerButton);
    pm.press_power_button();
    EXPECT_TRUE(sci->level());
    outw(kStatus, 0);  // writing 0 changes nothing
    outw(kStatus, static_cast<uint16_t>(~kPowerButton));
    EXPECT_EQ(inw(kStatus), kPowerButton);
    EXPECT_TRUE(sci->level());
    outw(kStatus, kPowerButton);
    EXPECT_EQ(inw(kStatus), 0);
    EXPECT_FALSE(sci->level());
    // A second press is a second rising edge.
    pm.press_power_button();
    EXPECT_EQ(sci->rising_edges(), 2);
}

TEST_F(AcpiPmTest, GuestCannotSetStatusOrReservedEnableBits) {
    outw(kStatus, 0xffff);
    EXPECT_EQ(inw(kStatus), 0);
    outw(kEnable, 0xffff);
    EXPECT_EQ(inw(kEnable), 0x4721);  // TMR, GBL, PWRBTN, SLPBTN, RTC, PCIEXP_WAKE_DIS
    EXPECT_TRUE(sci->levels().empty());
}

TEST_F(AcpiPmTest, DwordAccessCoversStatusAndEnable) {
    out_wide(pm, kStatus, 4, uint32_t{kPowerButton} << 16);  // enable PWRBTN
    pm.press_power_button();
    EXPECT_EQ(in_wide(pm, kStatus, 4), (uint64_t{kPowerButton} << 16) | kPowerButton);
    EXPECT_TRUE(sci->level());
}

TEST_F(AcpiPmTest, RegistersAtTheLayoutPorts) {
    Bus pio("pio");
    auto device = std::make_shared<AcpiPm>(sci, [this] { ++power_offs; });
    pio.insert(x86::kAcpiPm1aEventPort, AcpiPm::kSize, device);
    uint16_t value = sleep_type(x86::kAcpiS5SleepType) | kSleepEnable;
    EXPECT_TRUE(pio.write(x86::kAcpiPm1aControlPort,
                          {reinterpret_cast<const uint8_t*>(&value), sizeof(value)}));
    EXPECT_EQ(power_offs, 1);
}

TEST_F(AcpiPmTest, HostileAccessesDoNotCrash) {
    EXPECT_EQ(in_wide(pm, 4, 4), 0xffff'0001u);
    EXPECT_EQ(in_wide(pm, 6, 1), 0xffu);
    EXPECT_EQ(in_wide(pm, ~uint64_t{0}, 8), ~uint64_t{0});
    out_wide(pm, ~uint64_t{0}, 8, ~uint64_t{0});
    out_wide(pm, 5, 8, ~uint64_t{0});  // SLP_TYP 7 + SLP_EN: ignored sleep type
    EXPECT_EQ(power_offs, 0);
}

}  // namespace
}  // namespace vireo
