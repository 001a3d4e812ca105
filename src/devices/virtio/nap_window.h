#pragma once

#include <chrono>

namespace vireo {

// How long a device worker that shares its CPUs with the vCPUs leaves the
// guest to queue requests before it looks at the rings again. There, each of
// the guest's kicks wakes the worker, which then preempts the vCPU that was
// queueing: a guest that sends as fast as it can (a kernel's transmit queue,
// a deep disk queue) gets one request served per wake-up and pays a kick and
// two context switches for each. A worker that has served sleeps a nap with
// the guest told not to notify, so the guest queues a batch meanwhile. But a
// guest that waits for each answer (queue depth 1) would wait out every nap,
// so naps follow what they find: one new request ends napping; fewer than
// kBatch double the next nap (up to kMax), more halve it (down to kMin), so
// that a nap finds about a batch. A nap that finds none (the guest is slower
// than the nap, or idle) doubles it too, and ends napping at kMax. Not
// napping, the worker tries a nap every kProbeEvery passes, twice as long as
// the time between its last two passes: a guest that queues faster than the
// worker answers queues two meanwhile, one that waits for each answer one.
class NapWindow {
public:
    static constexpr std::chrono::nanoseconds kMin{8'000};
    static constexpr std::chrono::nanoseconds kMax{1'000'000};
    static constexpr unsigned kBatch = 16;
    static constexpr unsigned kProbeEvery = 64;

    // The nap to take after a pass that served work `since` after the one
    // before it; zero: none, sleep until the guest kicks.
    std::chrono::nanoseconds next(std::chrono::nanoseconds since);
    // The nap just taken found `requests` new requests in the rings.
    void found(unsigned requests);

private:
    std::chrono::nanoseconds nap_{0};  // the nap next() returns; zero: not napping
    unsigned passes_ = 0;              // not napping, since the last try
};

}  // namespace vireo
