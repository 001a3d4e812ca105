#pragma once

#include <optional>

#include "devices/virtio/virtio_device.h"

namespace vireo {

// virtio-rng (entropy device, virtio 1.x 5.4): one request queue; each chain's
// writable buffers are filled with getrandom() bytes, at most kMaxBytesPerRequest
// per chain, and returned with the count. No features, no configuration.
//
// The smallest complete virtio device: a new device copies this shape.
class VirtioRng final : public VirtioDevice {
public:
    // Bounds the host work one guest request can ask for.
    static constexpr uint32_t kMaxBytesPerRequest = 64 * 1024;
    static constexpr uint16_t kQueueSize = 256;

    uint32_t device_type() const override;
    std::string_view name() const override { return "virtio-rng"; }
    uint64_t device_features() const override { return 0; }
    uint16_t queue_count() const override { return 1; }
    uint16_t queue_max_size() const override { return kQueueSize; }

    void activate(const VirtioActivation& activation) override;
    void process_queue(uint16_t queue) override;
    void reset() override;

private:
    // Fills the chain's writable buffers; returns the bytes written.
    uint32_t fill(const DescriptorChain& chain);

    std::optional<VirtioActivation> active_;
};

}  // namespace vireo
