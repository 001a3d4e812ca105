#include "devices/virtio/device_worker.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>
#include <thread>

#include "base/error.h"

namespace vireo {
namespace {

// How often a polling worker looks at its fds.
constexpr std::chrono::nanoseconds kPollInterval{1'000};

}  // namespace

DeviceWorker::DeviceWorker(std::string name, std::vector<Source> sources, WorkerPace pace,
                           std::optional<RingPoll> rings)
    : name_(std::move(name)),
      sources_(std::move(sources)),
      poll_(pace.poll_max),
      rings_(std::move(rings)),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!epoll_) {
        fail_errno("{}: epoll_create1", name_);
    }
    if (pace.naps && rings_) {
        naps_.emplace();
        nap_epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
        if (!nap_epoll_) {
            fail_errno("{}: epoll_create1", name_);
        }
    }
    // Index sources_.size() is the stop event.
    for (size_t i = 0; i <= sources_.size(); ++i) {
        epoll_event event{};
        bool edge = i < sources_.size() && sources_[i].edge_triggered;
        event.events = EPOLLIN | (edge ? EPOLLET : 0u);
        event.data.u64 = i;
        int fd = i < sources_.size() ? sources_[i].fd : stop_event_.fd();
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
            fail_errno("{}: cannot watch fd {}", name_, fd);
        }
        bool ends_naps = i == sources_.size() || !sources_[i].guest_notification;
        if (nap_epoll_ && ends_naps &&
            ::epoll_ctl(nap_epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
            fail_errno("{}: cannot watch fd {}", name_, fd);
        }
    }
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& error) {
        fail("{}: cannot start a worker thread: {}", name_, error.what());
    }
    ::pthread_setname_np(thread_.native_handle(), name_.substr(0, 15).c_str());
}

DeviceWorker::~DeviceWorker() {
    stop();
}

void DeviceWorker::stop() {
    if (thread_.joinable()) {
        stop_event_.signal();
        thread_.join();
    }
}

void DeviceWorker::run() {
    serve_events();
    // A stopped worker leaves the guest free to notify (a paused VM's
    // notifications wait in the EventFds for the next worker).
    wake_rings();
}

void DeviceWorker::serve_events() {
    std::array<epoll_event, 16> events;
    while (true) {
        int count = wait_for_events(events);
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            spdlog::error("{}: epoll_wait failed, the device stops: {}", name_,
                          std::generic_category().message(errno));
            return;
        }
        for (int i = 0; i < count; ++i) {
            uint64_t index = events[static_cast<size_t>(i)].data.u64;
            if (index >= sources_.size()) {
                return;
            }
            try {
                sources_[index].on_readable();
            } catch (const std::exception& error) {
                // Device code does not throw for guest input; this is a host
                // failure (memory, I/O). Stop rather than spin on an undrained fd.
                spdlog::error("{}: the device stops: {}", name_, error.what());
                return;
            }
        }
    }
}

int DeviceWorker::wait_for_events(std::span<epoll_event> events) {
    Clock::time_point start = Clock::now();
    Found found = naps_ ? nap(events) : poll(events);
    // Never sleep with the guest told not to notify.
    if (!found.any() && wake_rings()) {
        found.at = Clock::now();
        found.served = rings_->serve() > 0;
    }
    if (!found.any()) {
        found.events =
            ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
        found.at = Clock::now();
    }
    if (found.events > 0 || found.served) {
        // The wait ended when the work was found, not when it was served: a
        // batch served as it grows would otherwise count as a long wait.
        poll_.waited(found.at - start);
        pass_interval_ = found.at - last_pass_;
        last_pass_ = found.at;
    }
    return found.events;
}

DeviceWorker::Found DeviceWorker::nap(std::span<epoll_event> events) {
    std::chrono::nanoseconds length = naps_->next(pass_interval_);
    if (length == std::chrono::nanoseconds{}) {
        return {};
    }
    quiet_rings();
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(length);
    timespec timeout{.tv_sec = seconds.count(), .tv_nsec = (length - seconds).count()};
    epoll_event ready;
    bool cut_short = ::epoll_pwait2(nap_epoll_.get(), &ready, 1, &timeout, nullptr) > 0;
    Found found{.at = Clock::now()};
    found.events = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 0);
    unsigned requests = serve_rings();
    // A nap that a TAP's frames or a disk's completions ended early says
    // little of the guest's pace, unless it found a batch all the same.
    if (!cut_short || requests >= 2) {
        naps_->found(requests);
    }
    found.served = requests > 0;
    return found;
}

DeviceWorker::Found DeviceWorker::poll(std::span<epoll_event> events) {
    Found found;
    if (poll_.window() == std::chrono::nanoseconds{}) {
        return found;
    }
    quiet_rings();
    Clock::time_point deadline = Clock::now() + poll_.window();
    while (true) {
        found.at = Clock::now();
        found.events =
            ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 0);
        if (found.events != 0 || (found.served = serve_rings() > 0) || found.at >= deadline) {
            return found;
        }
        // Each look is a system call: look about once a microsecond.
        Clock::time_point next = std::min(found.at + kPollInterval, deadline);
        while (Clock::now() < next) {
            __builtin_ia32_pause();  // a sibling hyperthread runs meanwhile
        }
    }
}

unsigned DeviceWorker::serve_rings() {
    return quiet_ ? rings_->serve() : 0;
}

void DeviceWorker::quiet_rings() {
    if (rings_ && !quiet_) {
        rings_->quiet();
        quiet_ = true;
    }
}

bool DeviceWorker::wake_rings() {
    if (!quiet_) {
        return false;
    }
    quiet_ = false;
    rings_->wake();
    return true;
}

}  // namespace vireo
