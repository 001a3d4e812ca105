#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct mnl_socket;

namespace vireo {

// Tells when a switch's team (a bond in active-backup mode) moves its
// traffic to another member: a failover or a failback. It listens to the
// kernel's link events (rtnetlink, through libmnl), in which the bond says
// which member is active; a team without one (balance-xor) never changes.
// Netlink, not sysfs: /sys/class/net shows the network namespace sysfs was
// mounted in, not the VMM's.
class FailoverWatch {
public:
    // Throws vireo::Error naming the team when it does not exist or the
    // host refuses the socket.
    explicit FailoverWatch(const std::string& team);
    ~FailoverWatch();
    FailoverWatch(const FailoverWatch&) = delete;
    FailoverWatch& operator=(const FailoverWatch&) = delete;

    // Readable when link events arrived: then call changed().
    int fd() const;
    // Consumes the events; true when the active member now differs from the
    // one seen before.
    bool changed();
    // The active member's name, empty when there is none.
    std::string active_member() const;

private:
    // Reads what waits on the socket (or, with `wait`, the next message),
    // noting the team's active member.
    void receive(bool wait);

    std::string team_;
    uint32_t team_index_;
    std::unique_ptr<mnl_socket, int (*)(mnl_socket*)> socket_;
    uint32_t active_index_ = 0;
};

}  // namespace vireo
