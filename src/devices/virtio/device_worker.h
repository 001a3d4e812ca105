#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/event_fd.h"
#include "base/unique_fd.h"
#include "devices/virtio/poll_window.h"

namespace vireo {

// The thread a device does its work on, never a vCPU thread: an epoll loop over
// file descriptors (a virtio device's queue-notify EventFds, later a tap or an
// io_uring) plus a stop EventFd. Handlers run on the worker thread, one at a
// time; a handler must drain its fd (epoll is level-triggered), unless its
// source is edge-triggered. Before it sleeps, the worker may poll its fds for
// a while (PollWindow): with a CPU to spare, that serves a guest's
// next request without waking a sleeping thread.
class DeviceWorker {
public:
    struct Source {
        int fd;
        std::function<void()> on_readable;
        // Woken only when the fd becomes readable again: for a source the
        // handler may leave undrained (a TAP while the guest has no receive
        // buffers), which it resumes from elsewhere.
        bool edge_triggered = false;
    };

    // Starts the thread (named `name`, cut to 15 characters), which polls for
    // up to `poll_max` before it sleeps (zero: never). Throws vireo::Error if
    // the host refuses epoll or a thread.
    DeviceWorker(std::string name, std::vector<Source> sources,
                 std::chrono::nanoseconds poll_max = {});
    ~DeviceWorker();
    DeviceWorker(const DeviceWorker&) = delete;
    DeviceWorker& operator=(const DeviceWorker&) = delete;

    // Stops and joins the thread; returns once no handler runs. Idempotent. Not
    // from a handler.
    void stop();

private:
    void run();
    // Events ready now or after polling, else after sleeping; -1 with errno.
    int wait_for_events(std::span<epoll_event> events);

    std::string name_;
    std::vector<Source> sources_;
    PollWindow poll_;
    UniqueFd epoll_;
    EventFd stop_event_;
    std::thread thread_;
};

}  // namespace vireo
