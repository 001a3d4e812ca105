#include "devices/virtio/rng.h"

#include <sys/random.h>

#include <cerrno>

#include "devices/virtio/virtio_spec.h"

namespace vireo {

uint32_t VirtioRng::device_type() const {
    return virtio::kDeviceEntropy;
}

void VirtioRng::activate(const VirtioActivation& activation) {
    active_.emplace(activation);
}

void VirtioRng::reset() {
    active_.reset();
}

void VirtioRng::process_queue(uint16_t queue) {
    if (!active_ || queue != 0) {
        return;
    }
    Virtqueue& requests = active_->queues[0];
    while (auto chain = requests.pop()) {
        // The driver must not offer device-readable buffers; they are ignored.
        requests.push(chain->head, fill(*chain));
    }
    if (requests.needs_interrupt()) {
        active_->interrupt.signal_used(0);
    }
}

uint32_t VirtioRng::fill(const DescriptorChain& chain) {
    uint32_t written = 0;
    for (const GuestBuffer& buffer : chain.writable) {
        uint32_t length = std::min(buffer.length, kMaxBytesPerRequest - written);
        // The chain was validated: the span exists.
        auto bytes = active_->memory.span(buffer.address, length);
        uint32_t done = 0;
        while (bytes && done < length) {
            ssize_t n = ::getrandom(bytes->data() + done, length - done, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return written + done;  // the host has no entropy to give: report what we have
            }
            done += static_cast<uint32_t>(n);
        }
        written += done;
        if (written == kMaxBytesPerRequest) {
            break;
        }
    }
    return written;
}

}  // namespace vireo
