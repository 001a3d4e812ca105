#include "devices/virtio/nap_window.h"

#include <gtest/gtest.h>

namespace vireo {
namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

// Passes until the window tries a nap; returns it.
nanoseconds next_probe(NapWindow& naps, nanoseconds since) {
    for (unsigned pass = 1; pass < NapWindow::kProbeEvery; ++pass) {
        EXPECT_EQ(naps.next(since), nanoseconds{}) << "pass " << pass;
    }
    return naps.next(since);
}

TEST(NapWindow, TriesANapTwiceThePassIntervalEveryKProbeEveryPasses) {
    NapWindow naps;
    EXPECT_EQ(next_probe(naps, microseconds(30)), microseconds(60));
    naps.found(1);  // a guest waiting for each answer
    EXPECT_EQ(next_probe(naps, microseconds(30)), microseconds(60));
    naps.found(1);
    EXPECT_EQ(next_probe(naps, nanoseconds(100)), NapWindow::kMin);
    naps.found(1);
    EXPECT_EQ(next_probe(naps, std::chrono::seconds(1)), NapWindow::kMax);
}

TEST(NapWindow, ANapFindingNothingDoublesUntilTheMaximum) {
    NapWindow naps;
    ASSERT_EQ(next_probe(naps, microseconds(200)), microseconds(400));
    naps.found(0);  // the guest queued nothing yet: perhaps it is slower than the nap
    EXPECT_EQ(naps.next(microseconds(500)), microseconds(800));
    naps.found(0);
    EXPECT_EQ(naps.next(microseconds(900)), NapWindow::kMax);
    naps.found(0);  // an idle guest: back to answering its kicks
    EXPECT_EQ(next_probe(naps, microseconds(200)), microseconds(400));
}

TEST(NapWindow, DoublesWhileNapsFindLessThanABatchUpToTheMaximum) {
    NapWindow naps;
    ASSERT_EQ(next_probe(naps, microseconds(100)), microseconds(200));
    naps.found(2);
    EXPECT_EQ(naps.next(microseconds(250)), microseconds(400));
    naps.found(5);
    EXPECT_EQ(naps.next(microseconds(450)), microseconds(800));
    naps.found(NapWindow::kBatch - 1);
    EXPECT_EQ(naps.next(microseconds(900)), NapWindow::kMax);
    naps.found(9);
    EXPECT_EQ(naps.next(microseconds(1100)), NapWindow::kMax);
}

TEST(NapWindow, HalvesWhileNapsFindMoreThanABatchDownToTheMinimum) {
    NapWindow naps;
    ASSERT_EQ(next_probe(naps, microseconds(50)), microseconds(100));
    naps.found(NapWindow::kBatch);
    EXPECT_EQ(naps.next(microseconds(110)), microseconds(50));
    naps.found(100);
    EXPECT_EQ(naps.next(microseconds(60)), microseconds(25));
    naps.found(100);
    naps.next(microseconds(30));
    naps.found(100);
    EXPECT_EQ(naps.next(microseconds(20)), NapWindow::kMin);
    naps.found(100);
    EXPECT_EQ(naps.next(microseconds(20)), NapWindow::kMin);
    naps.found(3);  // and grows again when the guest slows down
    EXPECT_EQ(naps.next(microseconds(20)), 2 * NapWindow::kMin);
}

TEST(NapWindow, ANapFindingFewerThanTwoEndsNapping) {
    NapWindow naps;
    ASSERT_EQ(next_probe(naps, microseconds(20)), microseconds(40));
    naps.found(3);
    ASSERT_EQ(naps.next(microseconds(50)), microseconds(80));
    naps.found(1);  // the guest now waits for each answer: answer its kicks at once
    EXPECT_EQ(next_probe(naps, microseconds(20)), microseconds(40));
}

}  // namespace
}  // namespace vireo
