#include "devices/virtio/device_worker.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace vireo {
namespace {

TEST(DeviceWorker, RunsHandlersOnItsOwnThread) {
    EventFd first;
    EventFd second;
    std::atomic<int> first_count = 0;
    std::atomic<int> second_count = 0;
    std::atomic<bool> other_thread = true;
    auto caller = std::this_thread::get_id();
    DeviceWorker worker("test-worker", {{first.fd(),
                                         [&] {
                                             first.consume();
                                             other_thread = other_thread &&
                                                            std::this_thread::get_id() != caller;
                                             ++first_count;
                                         }},
                                        {second.fd(), [&] {
                                             second.consume();
                                             ++second_count;
                                         }}});
    first.signal();
    second.signal();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while ((first_count == 0 || second_count == 0) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(first_count, 1);
    EXPECT_EQ(second_count, 1);
    EXPECT_TRUE(other_thread);
    worker.stop();
    worker.stop();  // idempotent
    first.signal();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(first_count, 1);  // nothing runs after stop()
}

TEST(DeviceWorker, StopWaitsForARunningHandler) {
    EventFd event;
    std::atomic<bool> started = false;
    std::atomic<bool> finished = false;
    DeviceWorker worker("slow-worker",
                        {{event.fd(), [&] {
                              event.consume();
                              started = true;
                              std::this_thread::sleep_for(std::chrono::milliseconds(50));
                              finished = true;
                          }}});
    event.signal();
    while (!started) {
        std::this_thread::yield();
    }
    worker.stop();
    EXPECT_TRUE(finished);
}

// How often thread `tid` of this process went to sleep.
long voluntary_switches(pid_t tid) {
    std::ifstream status("/proc/self/task/" + std::to_string(tid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("voluntary_ctxt_switches:")) {
            return std::stol(line.substr(line.find(':') + 1));
        }
    }
    return -1;
}

TEST(DeviceWorker, APollingWorkerServesQuickRequestsWithoutSleeping) {
    cpu_set_t cpus;
    ASSERT_EQ(::sched_getaffinity(0, sizeof cpus, &cpus), 0);
    if (CPU_COUNT(&cpus) < 2) {
        GTEST_SKIP() << "polling needs a second CPU (the VMM does not poll with one)";
    }
    // A guest at queue depth 1: each request comes right after the last one's answer.
    EventFd request;
    EventFd answer(/*nonblocking=*/false);
    std::atomic<pid_t> worker_tid = 0;
    DeviceWorker worker("polling-worker",
                        {{request.fd(),
                          [&] {
                              request.consume();
                              worker_tid = ::gettid();
                              answer.signal();
                          }}},
                        std::chrono::milliseconds(20));
    constexpr int kRequests = 2000;
    long switches_at_start = 0;
    for (int i = 0; i < kRequests; ++i) {
        if (i == 100) {  // the window has grown by now
            switches_at_start = voluntary_switches(worker_tid);
        }
        request.signal();
        ASSERT_EQ(answer.consume(), 1u);
    }
    long slept = voluntary_switches(worker_tid) - switches_at_start;
    // Without polling it sleeps for 5 to 50 % of them here (the rest arrive
    // before it is back in epoll_wait); polling, only when the host holds the
    // answer back for longer than the window (20 ms: another test, a sanitizer).
    EXPECT_LT(slept, 50);
}

}  // namespace
}  // namespace vireo
