#include "base/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "base/error.h"

namespace vireo {

EventFd::EventFd(bool nonblocking)
    : fd_(::eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0))) {
    if (!fd_) {
        fail_errno("eventfd");
    }
}

void EventFd::signal(uint64_t count) const {
    // A full counter (EAGAIN) already means "signalled"; nothing else can fail here.
    [[maybe_unused]] ssize_t n = ::write(fd_.get(), &count, sizeof(count));
}

uint64_t EventFd::consume() const {
    uint64_t count = 0;
    if (::read(fd_.get(), &count, sizeof(count)) != sizeof(count)) {
        return 0;
    }
    return count;
}

}  // namespace vireo
