#pragma once

#include <cstdint>

#include "base/unique_fd.h"

namespace vireo {

// A Linux eventfd: the doorbell between threads and between KVM and device
// models (ioeventfd for guest notifications, irqfd for interrupts).
class EventFd {
public:
    // Throws vireo::Error if the kernel refuses.
    explicit EventFd(bool nonblocking = true);

    int fd() const { return fd_.get(); }
    void signal(uint64_t count = 1) const;
    // Returns the accumulated count and resets it; 0 if nothing was signalled
    // (non-blocking) .
    uint64_t consume() const;

private:
    UniqueFd fd_;
};

}  // namespace vireo
