#include "devices/legacy/pvpanic.h"

#include <algorithm>

#include "base/error.h"

namespace vireo {

PvPanic::PvPanic(PanicCallback on_panic) : on_panic_(std::move(on_panic)) {
    if (!on_panic_) {
        fail("pvpanic: a panic callback is required");
    }
}

void PvPanic::read(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    if (offset == 0 && !data.empty()) {
        data[0] = kPanicked | kCrashLoaded;
    }
}

void PvPanic::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset != 0 || data.empty()) {
        return;
    }
    uint8_t events = data[0];
    if (events & kCrashLoaded) {
        log_.warn("the guest kernel loaded its crash kernel after a panic");
    }
    if (events & kPanicked) {
        on_panic_();
    }
}

}  // namespace vireo
