#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host/network_registry.h"
#include "net/persistent_tap.h"
#include "net/port_filter.h"
#include "vmm/vm_config.h"

namespace vireo {

// The host side of a jailed VMM's vNICs, which vireod (root) makes before the
// VMM starts and removes once it has ended, since the VMM has no
// CAP_NET_ADMIN: each vNIC's TAP, persistent and owned by the VM's uid
// (net/persistent_tap.h), so that the VMM attaches its queues by name; a vNIC
// on a port group plugged into it, with the port group's security policy
// (its nftables table) installed here. The VMM does everything else on its
// TAP itself (offloads, header size, queues, vhost-net).
class VmPorts {
public:
    VmPorts() = default;

    // Prepares the vNICs of `vm`'s `config` for a VMM running as `owner`, and
    // tells each port-group vNIC of `config` its switch's team (for notify
    // switches: the VMM watches the team's failovers itself). A
    // TAP of the same name that `owner` left (an earlier run of this VM
    // that vireod could not clean up) is made anew; any other interface of
    // that name is refused (409) naming it. When a step fails, what came
    // before is undone and the refusal (500) names the vNIC and the step.
    static VmPorts prepare(const std::string& vm, VmConfig& config, TapOwner owner,
                           const NetworkRegistry& network);
    // The ports of a running VMM that vireod adopts, for release() once it
    // ends (their tables go then as stale ones).
    static VmPorts of_running(const std::string& vm, const VmConfig& config, TapOwner owner);

    // Has vNIC `nic`'s security table follow `mac`, the MAC its guest took
    // (the VMM asks, through its port channel). Throws vireo::Error when
    // that vNIC has no table here (not on a port group, or adopted).
    void follow_mac(size_t nic, const MacAddress& mac);

    // Removes the tables and deletes the TAPs that are still `owner`'s; logs
    // what it cannot. Nothing is left to release after it.
    void release();

private:
    std::string vm_;
    TapOwner owner_;
    std::vector<std::string> taps_;
    bool on_portgroup_ = false;
    std::vector<std::unique_ptr<PortFilter>> filters_;  // by vNIC; null off port groups
};

}  // namespace vireo
