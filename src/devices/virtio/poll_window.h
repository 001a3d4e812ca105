#pragma once

#include <chrono>

namespace vireo {

// How long a device worker looks for events before it sleeps (adaptive
// polling, as QEMU's IOThreads). Waking a sleeping thread costs microseconds
// (tens under a nested hypervisor), which a guest waiting on one request at a
// time pays on each: a worker that polls for the guest's next kick serves it
// at once. The window follows the waits it sees, so an idle device costs no
// CPU: it grows (from kFirst, doubling, up to the maximum) while events come
// after it but within the maximum, stays while they come within it, and
// halves while they come later than the maximum, down to no polling.
class PollWindow {
public:
    static constexpr std::chrono::nanoseconds kFirst{4'000};

    // `max` zero: never poll.
    explicit PollWindow(std::chrono::nanoseconds max) : max_(max) {}

    std::chrono::nanoseconds window() const { return window_; }

    // An event came `wait` after the worker began to wait for one.
    void waited(std::chrono::nanoseconds wait);

private:
    std::chrono::nanoseconds max_;
    std::chrono::nanoseconds window_{0};
};

}  // namespace vireo
