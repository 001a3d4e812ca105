#include "devices/virtio/poll_window.h"

#include <gtest/gtest.h>

namespace vireo {
namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

TEST(PollWindow, GrowsWhileEventsComeWithinTheMaximum) {
    PollWindow poll(microseconds(64));
    EXPECT_EQ(poll.window(), nanoseconds{});
    poll.waited(microseconds(35));  // a guest's turnaround at queue depth 1
    EXPECT_EQ(poll.window(), PollWindow::kFirst);
    poll.waited(microseconds(35));
    EXPECT_EQ(poll.window(), microseconds(8));
    poll.waited(microseconds(35));
    poll.waited(microseconds(35));
    EXPECT_EQ(poll.window(), microseconds(32));
    poll.waited(microseconds(35));
    EXPECT_EQ(poll.window(), microseconds(64));  // caught from now on
    poll.waited(microseconds(35));
    poll.waited(microseconds(2));
    EXPECT_EQ(poll.window(), microseconds(64));
    poll.waited(microseconds(64));
    EXPECT_EQ(poll.window(), microseconds(64));
}

TEST(PollWindow, NeverPassesTheMaximum) {
    PollWindow poll(microseconds(20));
    for (int i = 0; i < 10; ++i) {
        poll.waited(microseconds(19));
    }
    EXPECT_EQ(poll.window(), microseconds(20));
    PollWindow tiny(nanoseconds(1'500));
    tiny.waited(nanoseconds(1'000));
    EXPECT_EQ(tiny.window(), nanoseconds(1'500));
}

TEST(PollWindow, HalvesToNothingWhileEventsComeLaterThanTheMaximum) {
    PollWindow poll(microseconds(64));
    for (int i = 0; i < 5; ++i) {
        poll.waited(microseconds(40));
    }
    ASSERT_EQ(poll.window(), microseconds(64));
    poll.waited(std::chrono::milliseconds(10));  // an idle guest
    EXPECT_EQ(poll.window(), microseconds(32));
    poll.waited(std::chrono::seconds(1));
    poll.waited(std::chrono::seconds(1));
    poll.waited(std::chrono::seconds(1));
    EXPECT_EQ(poll.window(), microseconds(4));
    poll.waited(std::chrono::seconds(1));
    EXPECT_EQ(poll.window(), nanoseconds{});  // an idle device costs no CPU
    poll.waited(std::chrono::seconds(1));
    EXPECT_EQ(poll.window(), nanoseconds{});
}

TEST(PollWindow, AZeroMaximumNeverPolls) {
    PollWindow poll(nanoseconds{});
    poll.waited(nanoseconds(1));
    poll.waited(microseconds(10));
    EXPECT_EQ(poll.window(), nanoseconds{});
}

}  // namespace
}  // namespace vireo
