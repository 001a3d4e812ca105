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

bool has_a_second_cpu() {
    cpu_set_t cpus;
    return ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) >= 2;
}

TEST(DeviceWorker, APollingWorkerServesQuickRequestsWithoutSleeping) {
    if (!has_a_second_cpu()) {
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
                        {.poll_max = std::chrono::milliseconds(20)});
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

// A ring stands in for a virtqueue: requests the "guest" queues without
// notifying while the worker said so, and the notification it sends
// otherwise. One request a look: the "guest" queues its next one only after
// the answer.
struct StandInRing {
    // `each`: how long each request takes to serve.
    explicit StandInRing(std::chrono::nanoseconds each = {}) : serving(each) {}

    std::chrono::nanoseconds serving;
    std::atomic<int> queued = 0;
    std::atomic<int> served = 0;
    std::atomic<bool> quiet = false;
    std::atomic<int> notifications = 0;
    EventFd notify;
    EventFd answer = EventFd(/*nonblocking=*/false);

    unsigned serve() {
        if (served == queued) {
            return 0;
        }
        ++served;
        std::this_thread::sleep_for(serving);
        answer.signal();
        return 1;
    }
    DeviceWorker::RingPoll rings() {
        return {[this] { quiet = true; }, [this] { return serve(); }, [this] { quiet = false; }};
    }
    std::vector<DeviceWorker::Source> sources() {
        return {{notify.fd(), [this] {
                     notify.consume();
                     serve();
                 }}};
    }
    // `count` requests, each after the last one's answer.
    void guest_requests(int count) {
        for (int i = 0; i < count; ++i) {
            ++queued;
            if (!quiet) {
                ++notifications;
                notify.signal();
            }
            ASSERT_EQ(answer.consume(), 1u);
        }
    }
};

TEST(DeviceWorker, WhilePollingItServesTheRingsWithTheGuestToldNotToNotify) {
    if (!has_a_second_cpu()) {
        GTEST_SKIP() << "polling needs a second CPU (the VMM does not poll with one)";
    }
    StandInRing ring;
    DeviceWorker worker("ring-worker", ring.sources(), {.poll_max = std::chrono::milliseconds(20)},
                        ring.rings());
    ring.guest_requests(2000);
    // The first request notifies; the window opens and stays open while
    // requests keep coming, so only a host that holds the worker back for
    // longer than 20 ms (another test, a sanitizer) costs one more.
    EXPECT_LT(ring.notifications, 50);
    worker.stop();
    EXPECT_FALSE(ring.quiet) << "the worker stopped with the guest told not to notify";
}

TEST(DeviceWorker, ServingALongBatchDoesNotCloseThePollWindow) {
    if (!has_a_second_cpu()) {
        GTEST_SKIP() << "polling needs a second CPU (the VMM does not poll with one)";
    }
    // Each request takes 5 ms to serve (a batch of frames, a system call
    // each), longer than the 4 ms window; the next one comes right after the
    // answer. What the window measures is the wait before a request, so it
    // stays open; counting the serving too, it would close and every request
    // would notify (all 100 do then).
    StandInRing ring(std::chrono::milliseconds(5));
    DeviceWorker worker("batch-worker", ring.sources(), {.poll_max = std::chrono::milliseconds(4)},
                        ring.rings());
    ring.guest_requests(100);
    EXPECT_LT(ring.notifications, 50);
}

TEST(DeviceWorker, NeverSleepsWithTheGuestToldNotToNotify) {
    std::atomic<bool> quiet = false;
    std::atomic<int> woken = 0;
    EventFd notify;
    DeviceWorker::RingPoll rings{[&] { quiet = true; }, [] { return 0u; },
                                 [&] {
                                     quiet = false;
                                     ++woken;
                                 }};
    DeviceWorker worker("ring-worker", {{notify.fd(), [&] { notify.consume(); }}},
                        {.poll_max = std::chrono::milliseconds(1)}, rings);
    for (int i = 0; i < 20; ++i) {
        // Two notifications 200 µs apart open the window (up to 1 ms) ...
        notify.signal();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        notify.signal();
        // ... and long after it closes, the worker sleeps with notifications on.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        EXPECT_FALSE(quiet) << "after round " << i;
    }
    EXPECT_GT(woken, 0) << "the window never opened";
    // And a worker stopped while it polls turns them back on too.
    notify.signal();
    worker.stop();
    EXPECT_FALSE(quiet);
}

// A ring the tests' "guest" fills and the worker serves through RingPoll, with
// the notification a guest sends while the worker has not said otherwise.
struct FakeRing {
    static constexpr unsigned kSize = 128;
    std::atomic<unsigned> queued = 0;
    std::atomic<unsigned> served = 0;
    std::atomic<bool> quiet = false;
    std::atomic<unsigned> notifications = 0;
    EventFd notify;

    unsigned serve() {
        unsigned added = queued - served;
        served += added;
        return added;
    }
    DeviceWorker::RingPoll poll() {
        return {[this] { quiet = true; }, [this] { return serve(); }, [this] { quiet = false; }};
    }
    DeviceWorker::Source source() {
        return {notify.fd(), [this] {
                    notify.consume();
                    serve();
                }};
    }
    // Queues one request, waiting while the ring is full.
    void queue() {
        while (queued - served >= kSize) {
            std::this_thread::yield();
        }
        ++queued;
        if (!quiet) {
            ++notifications;
            notify.signal();
        }
    }
    void wait_until_served() {
        while (served != queued) {
            std::this_thread::yield();
        }
    }
};

// Holds the calling thread, and the threads it starts, to one CPU while alive.
class OneCpu {
public:
    OneCpu() {
        ::sched_getaffinity(0, sizeof saved_, &saved_);
        cpu_set_t one;
        CPU_ZERO(&one);
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (CPU_ISSET(cpu, &saved_)) {
                CPU_SET(cpu, &one);
                break;
            }
        }
        ::sched_setaffinity(0, sizeof one, &one);
    }
    ~OneCpu() { ::sched_setaffinity(0, sizeof saved_, &saved_); }
    OneCpu(const OneCpu&) = delete;
    OneCpu& operator=(const OneCpu&) = delete;

private:
    cpu_set_t saved_;
};

TEST(DeviceWorker, NappingOnASharedCpuLetsAStreamingGuestQueueWithoutNotifying) {
    OneCpu one_cpu;  // the worker takes turns with the "guest", as with a vCPU
    FakeRing ring;
    DeviceWorker worker("napping-worker", {ring.source()}, {.naps = true}, ring.poll());
    constexpr unsigned kRequests = 20000;
    for (unsigned i = 0; i < kRequests; ++i) {
        ring.queue();
    }
    ring.wait_until_served();
    // Answering every kick at once, the worker takes each request alone and
    // the guest notifies for most; napping, it finds batches, and the guest
    // notifies again only when a nap finds nothing (or after one request).
    EXPECT_LT(ring.notifications, kRequests / 4);
    worker.stop();
    EXPECT_FALSE(ring.quiet) << "the worker stopped with the guest told not to notify";
}

TEST(DeviceWorker, NappingStopsForAGuestThatWaitsForEachAnswer) {
    OneCpu one_cpu;
    FakeRing ring;
    DeviceWorker worker("napping-worker", {ring.source()}, {.naps = true}, ring.poll());
    constexpr unsigned kRequests = 5000;
    for (unsigned i = 0; i < kRequests; ++i) {
        ring.queue();
        ring.wait_until_served();
    }
    // A nap finds one request here and ends napping; only the worker's tries
    // (one in NapWindow::kProbeEvery passes) leave the guest without a kick.
    EXPECT_GT(ring.notifications, kRequests / 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // longer than any nap
    EXPECT_FALSE(ring.quiet) << "an idle worker sleeps with the guest told not to notify";
}

}  // namespace
}  // namespace vireo
