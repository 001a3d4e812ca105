#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "net/mac_address.h"

namespace vireo {

// The channel between a jailed VMM and vireod for the vNICs on port groups:
// the guest takes a new MAC (virtio-net's control queue), and the port's
// security table (net/port_filter.h), which vireod installed and the VMM
// has no right to change, must follow it before the change is accepted. A
// SOCK_SEQPACKET socket pair made by vireod, one end inherited by the VMM;
// one message each way: "mac NIC MAC" (NIC counted from 0 in the definition's
// order), answered "ok" or "refused: WHY".
class PortChannel {
public:
    // The VMM's end.
    explicit PortChannel(UniqueFd fd) : fd_(std::move(fd)) {}

    // Asks vireod to make vNIC `nic`'s port follow `mac`; returns once it
    // has. Throws vireo::Error with vireod's reason, or when no answer comes
    // within two seconds (a vireod restarted since the VMM started never
    // answers: the channel was its predecessor's). Thread-safe.
    void follow_mac(size_t nic, const MacAddress& mac);

    // vireod's side: what a request asks, nullopt when it is malformed.
    struct Request {
        size_t nic;
        MacAddress mac;
    };
    static std::optional<Request> parse(std::string_view message);

private:
    std::mutex mutex_;
    UniqueFd fd_;
};

}  // namespace vireo
