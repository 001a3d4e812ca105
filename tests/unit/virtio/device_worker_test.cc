#include "devices/virtio/device_worker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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

}  // namespace
}  // namespace vireo
