#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/event_fd.h"
#include "base/unique_fd.h"
#include "devices/virtio/nap_window.h"
#include "devices/virtio/poll_window.h"
#include "devices/virtio/worker_pace.h"

namespace vireo {

// The thread a device does its work on, never a vCPU thread: an epoll loop over
// file descriptors (a virtio device's queue-notify EventFds, later a tap or an
// io_uring) plus a stop EventFd. Handlers run on the worker thread, one at a
// time; a handler must drain its fd (epoll is level-triggered), unless its
// source is edge-triggered. Before it sleeps, the worker may poll its fds for
// a while (PollWindow): with a CPU to spare, that serves a guest's
// next request without waking a sleeping thread. While it polls, the device's
// rings (RingPoll) are looked at directly and the guest told not to notify,
// so the guest does not exit for a notification the worker does not need, as
// QEMU's IOThreads do (io_poll_begin / io_poll_end). On CPUs it shares with
// the vCPUs it naps instead (NapWindow): with the guest told not to notify,
// it waits a while after serving and then looks at the rings, so a guest
// that queues faster than the worker answers queues a batch meanwhile; the
// device's own sources (not the guest's notifications) end a nap early.
class DeviceWorker {
public:
    struct Source {
        int fd;
        std::function<void()> on_readable;
        // Woken only when the fd becomes readable again: for a source the
        // handler may leave undrained (a TAP while the guest has no receive
        // buffers), which it resumes from elsewhere.
        bool edge_triggered = false;
        // The guest's notification of a queue. It does not end a nap (the
        // guest was told not to send it, and with VIRTIO_F_EVENT_IDX sends
        // one more regardless); every other source, a TAP's frames or a
        // disk's completions, does.
        bool guest_notification = false;
    };
    // A device's rings, polled while the worker polls; all on the worker thread.
    struct RingPoll {
        // Tells the guest not to notify.
        std::function<void()> quiet;
        // Serves what the guest queued since the last look; how many
        // requests that was (zero: none).
        std::function<unsigned()> serve;
        // Tells the guest to notify again (the worker then serves what it
        // queued before it could see that).
        std::function<void()> wake;
    };

    // Starts the thread (named `name`, cut to 15 characters), which waits for
    // events at `pace` (the default: sleeps at once). Throws vireo::Error if
    // the host refuses epoll or a thread.
    DeviceWorker(std::string name, std::vector<Source> sources, WorkerPace pace = {},
                 std::optional<RingPoll> rings = {});
    ~DeviceWorker();
    DeviceWorker(const DeviceWorker&) = delete;
    DeviceWorker& operator=(const DeviceWorker&) = delete;

    // Stops and joins the thread; returns once no handler runs. Idempotent. Not
    // from a handler.
    void stop();

private:
    void run();
    // The epoll loop, until the stop event or a failure.
    void serve_events();
    // What a look for work found: ready events (-1 with errno) and whether
    // the rings had requests, which it served.
    using Clock = std::chrono::steady_clock;
    struct Found {
        int events = 0;
        bool served = false;
        Clock::time_point at;  // when the look that found them began
        bool any() const { return events != 0 || served; }
    };
    // Events ready now or after napping or polling, else after sleeping; -1
    // with errno; 0 when looking at the rings found work (and served it).
    int wait_for_events(std::span<epoll_event> events);
    // On shared CPUs, after a pass: a nap (if the NapWindow wants one) with
    // the guest told not to notify, until it ends or a source other than the
    // guest's notifications is ready; then a look.
    Found nap(std::span<epoll_event> events);
    // Looks until events come, the rings have work or the window closes.
    Found poll(std::span<epoll_event> events);
    // How many requests the rings served; none when the guest notifies.
    unsigned serve_rings();
    // Tells the guest not to notify, if it may.
    void quiet_rings();
    // Lets the guest notify again if it was told not to; whether it was.
    bool wake_rings();

    std::string name_;
    std::vector<Source> sources_;
    PollWindow poll_;
    std::optional<NapWindow> naps_;             // on CPUs shared with the vCPUs
    Clock::time_point last_pass_;               // when work was last found
    std::chrono::nanoseconds pass_interval_{};  // and the time before that
    std::optional<RingPoll> rings_;
    bool quiet_ = false;  // the guest was told not to notify
    UniqueFd epoll_;
    UniqueFd nap_epoll_;  // the sources that end a nap, and the stop event
    EventFd stop_event_;
    std::thread thread_;
};

}  // namespace vireo
