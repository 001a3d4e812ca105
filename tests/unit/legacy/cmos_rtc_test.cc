#include "devices/legacy/cmos_rtc.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "port_io.h"

namespace vireo {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint8_t kRegisterB = 0x0b;

std::time_t utc(int year, int month, int day, int hour, int minute, int second) {
    std::tm time{};
    time.tm_year = year - 1900;
    time.tm_mon = month - 1;
    time.tm_mday = day;
    time.tm_hour = hour;
    time.tm_min = minute;
    time.tm_sec = second;
    return ::timegm(&time);
}

class CmosRtcTest : public ::testing::Test {
protected:
    // Friday 2024-03-15 13:45:30 UTC.
    std::time_t now = utc(2024, 3, 15, 13, 45, 30);
    CmosRtc rtc{256 * kMiB, 2, [this] { return now; }};

    uint8_t cmos(uint8_t index) {
        outb(rtc, 0, index);
        return inb(rtc, 1);
    }
    void set_cmos(uint8_t index, uint8_t value) {
        outb(rtc, 0, index);
        outb(rtc, 1, value);
    }
};

TEST_F(CmosRtcTest, TimeIsBcdAnd24HourByDefault) {
    EXPECT_EQ(cmos(0x00), 0x30);
    EXPECT_EQ(cmos(0x02), 0x45);
    EXPECT_EQ(cmos(0x04), 0x13);
    EXPECT_EQ(cmos(0x06), 6);  // Friday; Sunday is 1
    EXPECT_EQ(cmos(0x07), 0x15);
    EXPECT_EQ(cmos(0x08), 0x03);
    EXPECT_EQ(cmos(0x09), 0x24);
    EXPECT_EQ(cmos(0x32), 0x20);
}

TEST_F(CmosRtcTest, BinaryModeReportsPlainNumbers) {
    set_cmos(kRegisterB, 0x06);  // binary, 24-hour
    EXPECT_EQ(cmos(0x00), 30);
    EXPECT_EQ(cmos(0x02), 45);
    EXPECT_EQ(cmos(0x04), 13);
    EXPECT_EQ(cmos(0x07), 15);
    EXPECT_EQ(cmos(0x09), 24);
    EXPECT_EQ(cmos(0x32), 20);
}

TEST_F(CmosRtcTest, TwelveHourModeSetsThePmBit) {
    set_cmos(kRegisterB, 0x00);   // BCD, 12-hour
    EXPECT_EQ(cmos(0x04), 0x81);  // 1 PM
    now = utc(2024, 3, 15, 0, 15, 0);
    EXPECT_EQ(cmos(0x04), 0x12);  // 12 AM
    now = utc(2024, 3, 15, 12, 0, 0);
    EXPECT_EQ(cmos(0x04), 0x92);  // 12 PM
    now = utc(2024, 3, 15, 23, 0, 0);
    set_cmos(kRegisterB, 0x04);  // binary, 12-hour
    EXPECT_EQ(cmos(0x04), 0x80 | 11);
}

TEST_F(CmosRtcTest, TimeFollowsTheClock) {
    now += 75;
    EXPECT_EQ(cmos(0x00), 0x45);
    EXPECT_EQ(cmos(0x02), 0x46);
}

TEST_F(CmosRtcTest, GuestSetTimeKeepsRunning) {
    set_cmos(kRegisterB, 0x82);  // SET while writing, as Linux does
    set_cmos(0x04, 0x08);
    set_cmos(0x09, 0x30);
    set_cmos(kRegisterB, 0x02);
    EXPECT_EQ(cmos(0x04), 0x08);
    EXPECT_EQ(cmos(0x02), 0x45);
    EXPECT_EQ(cmos(0x09), 0x30);
    now += 10;
    EXPECT_EQ(cmos(0x00), 0x40);
    // 12-hour writes decode the PM bit.
    set_cmos(kRegisterB, 0x00);
    set_cmos(0x04, 0x83);
    set_cmos(kRegisterB, 0x02);
    EXPECT_EQ(cmos(0x04), 0x15);
}

TEST_F(CmosRtcTest, StatusRegisters) {
    EXPECT_EQ(cmos(0x0a), 0x26);
    set_cmos(0x0a, 0xa5);
    EXPECT_EQ(cmos(0x0a), 0x25);  // UIP is read-only and never set
    EXPECT_EQ(cmos(0x0b), 0x02);
    set_cmos(0x0c, 0xff);
    EXPECT_EQ(cmos(0x0c), 0x00);  // no interrupt flags
    set_cmos(0x0d, 0x00);
    EXPECT_EQ(cmos(0x0d), 0x80);  // valid RAM and time
}

TEST_F(CmosRtcTest, CmosRamHoldsBytes) {
    set_cmos(0x40, 0x5a);
    set_cmos(0x7f, 0xa5);
    EXPECT_EQ(cmos(0x40), 0x5a);
    EXPECT_EQ(cmos(0x7f), 0xa5);
    // Bit 7 of the index is the NMI mask, not part of the index.
    outb(rtc, 0, 0x80 | 0x40);
    EXPECT_EQ(inb(rtc, 1), 0x5a);
    EXPECT_EQ(inb(rtc, 0), 0xff);  // the index port is write-only
}

TEST_F(CmosRtcTest, MemorySizesFor256MiB) {
    EXPECT_EQ(cmos(0x15), 0x80);  // 640 KiB
    EXPECT_EQ(cmos(0x16), 0x02);
    EXPECT_EQ(cmos(0x17), 0xff);  // 255 MiB in KiB, capped
    EXPECT_EQ(cmos(0x18), 0xff);
    EXPECT_EQ(cmos(0x30), 0xff);
    EXPECT_EQ(cmos(0x31), 0xff);
    EXPECT_EQ(cmos(0x34), 0x00);  // 240 MiB / 64 KiB = 0x0f00
    EXPECT_EQ(cmos(0x35), 0x0f);
    EXPECT_EQ(cmos(0x5b), 0x00);
    EXPECT_EQ(cmos(0x5c), 0x00);
    EXPECT_EQ(cmos(0x5d), 0x00);
    EXPECT_EQ(cmos(0x5f), 1);  // two CPUs
}

TEST(CmosRtc, MemorySizesFor8GiB) {
    CmosRtc rtc(8 * kGiB, 64, [] { return std::time_t{0}; });
    auto cmos = [&rtc](uint8_t index) {
        outb(rtc, 0, index);
        return inb(rtc, 1);
    };
    EXPECT_EQ(cmos(0x17), 0xff);
    EXPECT_EQ(cmos(0x18), 0xff);
    // 3 GiB below the PCI hole: (3 GiB - 16 MiB) / 64 KiB = 0xbf00.
    EXPECT_EQ(cmos(0x34), 0x00);
    EXPECT_EQ(cmos(0x35), 0xbf);
    // 5 GiB above 4 GiB: 0x14000 units of 64 KiB.
    EXPECT_EQ(cmos(0x5b), 0x00);
    EXPECT_EQ(cmos(0x5c), 0x40);
    EXPECT_EQ(cmos(0x5d), 0x01);
    EXPECT_EQ(cmos(0x5f), 63);
}

TEST(CmosRtc, MemorySizesFor8MiB) {
    CmosRtc rtc(8 * kMiB, 1, [] { return std::time_t{0}; });
    auto cmos = [&rtc](uint8_t index) {
        outb(rtc, 0, index);
        return inb(rtc, 1);
    };
    EXPECT_EQ(cmos(0x17), 0x00);  // 7 MiB = 0x1c00 KiB
    EXPECT_EQ(cmos(0x18), 0x1c);
    EXPECT_EQ(cmos(0x34), 0x00);
    EXPECT_EQ(cmos(0x35), 0x00);
    EXPECT_EQ(cmos(0x5f), 0);
}

TEST(CmosRtc, RejectsBadCpuCountOrClock) {
    EXPECT_THROW(CmosRtc(kGiB, 0), Error);
    EXPECT_THROW(CmosRtc(kGiB, 257), Error);
    EXPECT_THROW(CmosRtc(kGiB, 1, nullptr), Error);
}

TEST_F(CmosRtcTest, HostileAccessesDoNotCrash) {
    // outw to the index port writes index and data, as on ISA.
    out_wide(rtc, 0, 2, 0x7740);
    EXPECT_EQ(cmos(0x40), 0x77);
    EXPECT_EQ(in_wide(rtc, 0, 2), 0x77ffu);
    EXPECT_EQ(in_wide(rtc, 1, 4), 0xffff'ff77u);
    EXPECT_EQ(in_wide(rtc, 2, 1), 0xffu);
    EXPECT_EQ(in_wide(rtc, ~uint64_t{0}, 8), ~uint64_t{0});
    out_wide(rtc, ~uint64_t{0}, 8, 0);
    out_wide(rtc, 1, 8, 0);  // 0 to CMOS 0x40, the rest dropped
    EXPECT_EQ(cmos(0x40), 0x00);
    // Nonsense time values are normalised, not trusted.
    set_cmos(0x08, 0x99);
    set_cmos(0x07, 0xff);
    set_cmos(0x32, 0xff);
    EXPECT_LE(cmos(0x08), 0x12);
}

}  // namespace
}  // namespace vireo
