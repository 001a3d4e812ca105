#include "devices/virtio/worker_pace.h"

#include <gtest/gtest.h>

namespace vireo {
namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

TEST(WorkerPace, AVmPollsWithMoreCpusThanVcpusAndNapsWithout) {
    auto polls = [](nanoseconds poll_max, unsigned vcpus, unsigned cpus) {
        WorkerPace pace = device_pace(poll_max, vcpus, cpus);
        EXPECT_FALSE(pace.naps);
        return pace.poll_max;
    };
    EXPECT_EQ(polls(microseconds(64), 1, 2), microseconds(64));
    EXPECT_EQ(polls(microseconds(64), 4, 64), microseconds(64));
    EXPECT_EQ(polls(nanoseconds{}, 1, 64), nanoseconds{});  // polling switched off
    for (auto [vcpus, cpus] : {std::pair{2u, 2u}, {1u, 1u}, {8u, 2u}}) {
        WorkerPace pace = device_pace(microseconds(64), vcpus, cpus);
        EXPECT_TRUE(pace.naps) << vcpus << " vCPUs on " << cpus << " CPUs";
        EXPECT_EQ(pace.poll_max, nanoseconds{}) << vcpus << " vCPUs on " << cpus << " CPUs";
    }
}

}  // namespace
}  // namespace vireo
