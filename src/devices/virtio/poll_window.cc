#include "devices/virtio/poll_window.h"

#include <algorithm>

namespace vireo {

void PollWindow::waited(std::chrono::nanoseconds wait) {
    if (wait <= window_) {
        return;  // polling caught it
    }
    if (wait > max_) {
        window_ /= 2;
        if (window_ < kFirst) {
            window_ = {};
        }
        return;
    }
    window_ = window_ == std::chrono::nanoseconds{} ? std::min(kFirst, max_)
                                                    : std::min(window_ * 2, max_);
}

std::chrono::nanoseconds device_poll_max(std::chrono::nanoseconds configured, unsigned vcpus,
                                         unsigned usable_cpus) {
    return usable_cpus > vcpus ? configured : std::chrono::nanoseconds{};
}

}  // namespace vireo
