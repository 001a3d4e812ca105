#include "devices/virtio/nap_window.h"

#include <algorithm>

namespace vireo {

std::chrono::nanoseconds NapWindow::next(std::chrono::nanoseconds since) {
    if (nap_ == std::chrono::nanoseconds{} && ++passes_ == kProbeEvery) {
        passes_ = 0;
        nap_ = std::clamp(since * 2, kMin, kMax);  // a try: what it finds decides
    }
    return nap_;
}

void NapWindow::found(unsigned requests) {
    if (requests == 1 || (requests == 0 && nap_ >= kMax)) {
        nap_ = {};
    } else if (requests < kBatch) {
        nap_ = std::min(nap_ * 2, kMax);
    } else {
        nap_ = std::max(nap_ / 2, kMin);
    }
}

}  // namespace vireo
