#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "net/mac_address.h"
#include "net/network_config.h"

namespace vireo {

class Nftables;

// ESX's security policy for one vNIC, enforced by the host kernel on the
// vNIC's TAP: an nftables table of the netdev family (`vireo-port-TAP`) with
// a chain on the TAP's ingress hook (frames the guest sends) and one on its
// egress hook (frames for the guest). So the policy holds whoever moves the
// frames, vireo-vmm or vhost-net, and costs only that TAP's frames, not every
// frame crossing the switch. Dropped frames are counted by the rules
// (`nft list table netdev vireo-port-TAP`).
//
// The table keeps the vNIC's state apart from the policy: the set
// `effective` holds the MAC the guest answers to now, and `cut_off` holds the
// TAP's name while that MAC differs from the vNIC's own; the rules, which
// only name those sets, are the policy. So the vNIC (which alone sees the
// guest change its MAC, through the control queue) updates the sets, and a
// policy change replaces the rules of a running VM's table (apply_policy)
// without knowing its MAC.
class PortFilter {
public:
    // Installs the policy on `tap` (which must exist), replacing what an
    // earlier VM on that TAP left. Throws vireo::Error naming the TAP.
    PortFilter(std::string tap, MacAddress own_mac, SecurityPolicy policy);
    // Removes the table.
    ~PortFilter();
    PortFilter(const PortFilter&) = delete;
    PortFilter& operator=(const PortFilter&) = delete;
    // Thread safety: every call may come from any thread.

    // The guest now answers to `mac`. Throws vireo::Error.
    void set_effective_mac(MacAddress mac);
    // Frames the rules have dropped, both ways. Throws vireo::Error.
    uint64_t dropped();

    const std::string& table() const { return table_; }

    // Replaces the rules of the running VM's table on `tap` with `policy`'s
    // in one transaction; false when the TAP has no table (no such port).
    // Throws vireo::Error when nftables refuses.
    static bool apply_policy(const std::string& tap, const SecurityPolicy& policy);
    // Removes the tables of TAPs that no longer exist (a VMM killed before it
    // could remove its own). Returns how many went.
    static size_t remove_stale();

private:
    std::string run(const std::string& commands);

    std::string tap_;
    std::string table_;
    MacAddress own_mac_;
    std::mutex mutex_;  // guards nftables_
    std::unique_ptr<Nftables> nftables_;
};

}  // namespace vireo
