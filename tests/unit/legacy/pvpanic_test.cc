#include "devices/legacy/pvpanic.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "port_io.h"

namespace vireo {
namespace {

class PvPanicTest : public ::testing::Test {
protected:
    int panics = 0;
    PvPanic device{[this] { ++panics; }};
};

TEST_F(PvPanicTest, ReadsTheEventsItSupports) {
    EXPECT_EQ(inb(device, 0), PvPanic::kPanicked | PvPanic::kCrashLoaded);
}

TEST_F(PvPanicTest, APanickedWriteReportsThePanic) {
    outb(device, 0, PvPanic::kPanicked);
    EXPECT_EQ(panics, 1);
    outb(device, 0, PvPanic::kPanicked | PvPanic::kCrashLoaded);
    EXPECT_EQ(panics, 2);
}

TEST_F(PvPanicTest, OtherEventsAndStrayAccessesDoNotEndTheMachine) {
    outb(device, 0, PvPanic::kCrashLoaded);
    outb(device, 0, 0);
    outb(device, 0, 0x80);
    outb(device, 1, PvPanic::kPanicked);
    device.write(0, {});
    EXPECT_EQ(panics, 0);
    uint8_t wide[4] = {0xaa, 0xaa, 0xaa, 0xaa};
    device.read(0, wide);
    EXPECT_EQ(wide[0], PvPanic::kPanicked | PvPanic::kCrashLoaded);
    EXPECT_EQ(wide[3], 0);
}

TEST(PvPanic, RequiresACallback) {
    EXPECT_THROW(PvPanic(nullptr), Error);
}

}  // namespace
}  // namespace vireo
