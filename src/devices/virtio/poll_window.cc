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

}  // namespace vireo
