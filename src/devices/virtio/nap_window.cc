#include "devices/virtio/nap_window.h"

#include <algorithm>

namespace vireo {

std::chrono::nanoseconds NapWindow::next(std::chrono::nanoseconds since) {
    if (nap_ > std::chrono::nanoseconds{}) {
        taken_ = nap_;
        return nap_;
    }
    if (++passes_ < kProbeEvery) {
        return {};
    }
    passes_ = 0;
    taken_ = std::clamp(since * 2, kMin, kMax);
    return taken_;
}

void NapWindow::found(unsigned requests) {
    if (requests == 1 || (requests == 0 && taken_ >= kMax)) {
        nap_ = {};
    } else if (requests < kBatch) {
        nap_ = std::min(taken_ * 2, kMax);
    } else {
        nap_ = std::max(taken_ / 2, kMin);
    }
}

}  // namespace vireo
