#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace vireo {

// Where a vNIC's frames go and come from: the host end of its wire (a TAP
// device). Every frame carries the 12-byte virtio-net header in front.
class NetBackend {
public:
    static constexpr size_t kHeaderBytes = 12;  // struct virtio_net_hdr_v1

    virtual ~NetBackend() = default;
    // Readable when frames wait to be read (watched edge-triggered).
    virtual int fd() const = 0;
    // Which offloaded frames the guest takes (TUN_F_* bits).
    virtual void set_offloads(unsigned tun_flags) = 0;
    // One frame into `frame`: the bytes read, 0 when none is waiting.
    virtual size_t read(std::span<uint8_t> frame) = 0;
    // One frame from the guest. False when it was refused (dropped).
    virtual bool write(std::span<const iovec> frame) = 0;
    // For one of several queues of a wire: whether frames should come in on
    // it (the driver uses its queue pair). Throws vireo::Error.
    virtual void set_enabled(bool enabled) = 0;
};

}  // namespace vireo
