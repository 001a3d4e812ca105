#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "net/net_backend.h"

namespace vireo {

// A Linux TAP device: the host end of a vNIC. Each frame crosses it with the
// 12-byte virtio-net header in front (IFF_VNET_HDR), so the guest's checksum
// and segmentation offloads pass through to the host stack untouched. The fd
// is non-blocking; the interface disappears when the last fd closes, unless
// the host configuration made it persistent.
class Tap final : public NetBackend {
public:
    // Attaches to the TAP `name`, creating it when it does not exist (which
    // takes CAP_NET_ADMIN). A multi-queue TAP (IFF_MULTI_QUEUE) takes one
    // Tap per queue, each attached with the same name; the kernel spreads
    // received flows over the attached queues. Throws vireo::Error naming
    // the interface.
    explicit Tap(const std::string& name, bool multi_queue = false);
    // Takes over `fd`, an open TAP that its launcher created and plugged into
    // a switch (vireo run hands it over across exec). Throws unless it is the
    // TAP `name` with a virtio-net header.
    Tap(UniqueFd fd, const std::string& name);

    const std::string& name() const { return name_; }
    int fd() const override { return fd_.get(); }

    // The host stack finishes checksums and segments what the guest did not
    // accept.
    void set_offloads(unsigned tun_flags) override;
    // Throws vireo::Error for a host failure.
    size_t read(std::span<uint8_t> frame) override;
    // False when the host refused the frame (a malformed header, a full
    // queue): it is dropped, as a wire would.
    bool write(std::span<const iovec> frame) override;
    // A multi-queue TAP's queue leaves the flows' spread (the driver does not
    // use its queue pair) or joins it again.
    void set_enabled(bool enabled) override;

private:
    std::string name_;
    UniqueFd fd_;
};

}  // namespace vireo
