#include "devices/legacy/debug_exit.h"

#include <gtest/gtest.h>

#include <vector>

#include "base/error.h"
#include "port_io.h"

namespace vireo {
namespace {

class DebugExitTest : public ::testing::Test {
protected:
    std::vector<uint32_t> exits;
    DebugExit device{[this](uint32_t value) { exits.push_back(value); }};
};

TEST_F(DebugExitTest, WriteCallsTheExitCallbackWithTheValue) {
    outb(device, 0, 0x31);
    out_wide(device, 0, 2, 0x1234);
    out_wide(device, 0, 4, 0x8765'4321);
    EXPECT_EQ(exits, (std::vector<uint32_t>{0x31, 0x1234, 0x8765'4321}));
}

TEST_F(DebugExitTest, ReadsAreZero) {
    EXPECT_EQ(in_wide(device, 0, 4), 0u);
    EXPECT_TRUE(exits.empty());
}

TEST_F(DebugExitTest, RejectsMissingCallback) {
    EXPECT_THROW(DebugExit(nullptr), Error);
}

TEST_F(DebugExitTest, AccessesPastThePortAreDropped) {
    out_wide(device, 4, 1, 1);
    out_wide(device, ~uint64_t{0}, 4, 1);
    out_wide(device, 0, 8, 1);
    EXPECT_EQ(in_wide(device, 100, 8), 0u);
    EXPECT_TRUE(exits.empty());
}

}  // namespace
}  // namespace vireo
