#include "devices/legacy/i8042.h"

#include <gtest/gtest.h>

#include "arch/x86/layout.h"
#include "base/error.h"
#include "devices/bus.h"
#include "port_io.h"

namespace vireo {
namespace {

constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;
constexpr uint8_t kStatusCommand = 0x08;

class I8042Test : public ::testing::Test {
protected:
    int resets = 0;
    std::shared_ptr<I8042> controller = std::make_shared<I8042>([this] { ++resets; });
    I8042Port data{controller, I8042Port::Kind::Data};
    I8042Port command{controller, I8042Port::Kind::Command};
};

TEST_F(I8042Test, StartsWithSystemFlagAndEmptyOutput) {
    uint8_t status = inb(command, 0);
    EXPECT_EQ(status & kStatusOutputFull, 0);
    EXPECT_EQ(status & kStatusSystemFlag, kStatusSystemFlag);
    EXPECT_EQ(inb(data, 0), 0);  // nothing was ever output
}

TEST_F(I8042Test, RejectsMissingCallbackOrController) {
    EXPECT_THROW(I8042(nullptr), Error);
    EXPECT_THROW(I8042Port(nullptr, I8042Port::Kind::Data), Error);
}

TEST_F(I8042Test, SelfTestAnswers55) {
    outb(command, 0, 0xaa);
    EXPECT_EQ(inb(command, 0) & kStatusOutputFull, kStatusOutputFull);
    EXPECT_EQ(inb(data, 0), 0x55);
    EXPECT_EQ(inb(command, 0) & kStatusOutputFull, 0);
    EXPECT_EQ(inb(data, 0), 0x55);  // nothing pending: the last value again
}

TEST_F(I8042Test, InterfaceTestAnswers0) {
    outb(command, 0, 0xaa);
    inb(data, 0);
    outb(command, 0, 0xab);
    EXPECT_EQ(inb(command, 0) & kStatusOutputFull, kStatusOutputFull);
    EXPECT_EQ(inb(data, 0), 0x00);
}

TEST_F(I8042Test, ConfigByteReadsBackWhatWasWritten) {
    outb(command, 0, 0x20);
    EXPECT_EQ(inb(data, 0), 0x45);
    outb(command, 0, 0x60);
    outb(data, 0, 0x61);  // no system flag
    EXPECT_EQ(inb(command, 0) & kStatusSystemFlag, 0);
    outb(command, 0, 0x20);
    EXPECT_EQ(inb(data, 0), 0x61);
}

TEST_F(I8042Test, EnableAndDisableCommandsFlipConfigBits) {
    auto config = [this] {
        outb(command, 0, 0x20);
        return inb(data, 0);
    };
    outb(command, 0, 0xad);
    EXPECT_EQ(config() & 0x10, 0x10);
    outb(command, 0, 0xae);
    EXPECT_EQ(config() & 0x10, 0);
    outb(command, 0, 0xa7);
    EXPECT_EQ(config() & 0x20, 0x20);
    outb(command, 0, 0xa8);
    EXPECT_EQ(config() & 0x20, 0);
}

TEST_F(I8042Test, StatusTellsCommandFromData) {
    outb(command, 0, 0xae);
    EXPECT_EQ(inb(command, 0) & kStatusCommand, kStatusCommand);
    outb(data, 0, 0xf4);  // a byte for the (absent) keyboard
    EXPECT_EQ(inb(command, 0) & kStatusCommand, 0);
}

TEST_F(I8042Test, PulseResetCallsTheCallbackOnce) {
    outb(command, 0, 0xfe);
    EXPECT_EQ(resets, 1);
    outb(command, 0, 0xff);  // pulses nothing
    EXPECT_EQ(resets, 1);
}

TEST_F(I8042Test, OutputPortResetBitResets) {
    outb(command, 0, 0xd0);
    EXPECT_EQ(inb(data, 0), 0x03);
    outb(command, 0, 0xd1);
    outb(data, 0, 0x03);  // reset line stays high
    EXPECT_EQ(resets, 0);
    outb(command, 0, 0xd1);
    outb(data, 0, 0x02);
    EXPECT_EQ(resets, 1);
    // The parameter was consumed: a further data byte is for the keyboard.
    outb(data, 0, 0x00);
    EXPECT_EQ(resets, 1);
}

TEST_F(I8042Test, UnknownCommandsAreIgnored) {
    outb(command, 0, 0x12);
    outb(command, 0, 0xc0);
    EXPECT_EQ(inb(command, 0) & kStatusOutputFull, 0);
    outb(data, 0, 0x00);  // not a parameter of anything
    outb(command, 0, 0x20);
    EXPECT_EQ(inb(data, 0), 0x45);
    EXPECT_EQ(resets, 0);
}

TEST_F(I8042Test, PortsSitAtDataAndCommandAddressesOnly) {
    Bus pio("pio");
    pio.insert(x86::kI8042Port, 1, std::make_shared<I8042Port>(controller, I8042Port::Kind::Data));
    pio.insert(x86::kI8042Port + 4, 1,
               std::make_shared<I8042Port>(controller, I8042Port::Kind::Command));
    uint8_t value = 0xaa;
    EXPECT_TRUE(pio.write(x86::kI8042Port + 4, {&value, 1}));
    EXPECT_TRUE(pio.read(x86::kI8042Port, {&value, 1}));
    EXPECT_EQ(value, 0x55);
    EXPECT_FALSE(pio.read(x86::kI8042Port + 1, {&value, 1}));  // port B is someone else's
}

TEST_F(I8042Test, HostileAccessesDoNotCrash) {
    outb(command, 0, 0xaa);
    EXPECT_EQ(in_wide(data, 0, 2), 0xff55u);  // low byte is the port
    EXPECT_EQ(in_wide(data, 1, 1), 0xffu);
    EXPECT_EQ(in_wide(command, ~uint64_t{0}, 8), ~uint64_t{0});
    out_wide(command, 3, 1, 0xfe);  // past the port: dropped
    EXPECT_EQ(resets, 0);
    out_wide(command, 0, 4, 0xfe);  // acts on the low byte
    EXPECT_EQ(resets, 1);
}

}  // namespace
}  // namespace vireo
