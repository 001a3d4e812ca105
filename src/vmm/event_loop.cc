#include "vmm/event_loop.h"

#include <poll.h>

#include <vector>

#include "base/error.h"

namespace vireo {

void EventLoop::add(int fd, Handler on_readable) {
    handlers_[fd] = std::move(on_readable);
}

void EventLoop::remove(int fd) {
    handlers_.erase(fd);
}

void EventLoop::run() {
    running_ = true;
    while (running_) {
        std::vector<pollfd> fds;
        for (const auto& [fd, handler] : handlers_) {
            fds.push_back(pollfd{fd, POLLIN, 0});
        }
        int ready = ::poll(fds.data(), fds.size(), -1);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail_errno("poll");
        }
        for (const pollfd& entry : fds) {
            if (!running_) {
                break;
            }
            if ((entry.revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                continue;
            }
            // Copy: the handler may remove itself.
            auto found = handlers_.find(entry.fd);
            if (found != handlers_.end()) {
                Handler handler = found->second;
                handler();
            }
        }
    }
}

}  // namespace vireo
