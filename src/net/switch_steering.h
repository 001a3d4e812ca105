#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "net/mac_address.h"
#include "net/network_config.h"

namespace vireo {

// ESX's load balancing by originating virtual port (portid) and by source
// MAC hash (mac) over two or more active uplinks, without an EtherChannel on
// the physical switch. A bond cannot do it: in balance-xor it takes frames in
// from every member (the physical switch floods a broadcast to each, so the
// VMs get it once per uplink, and their own broadcasts come back through the
// other uplink), and its other modes send everything through one member or
// rewrite source MACs. So each teamed uplink is a port of the switch's
// bridge of its own, isolated from the others (no frame goes from one uplink
// to another: no loop, no spanning tree) and not learning (a MAC behind the
// uplinks is not pinned to one of them, so frames for outside go out the
// sender's uplink), and a bridge-family nftables table, `vireo-steer-SWITCH`,
// steers:
//   - each port's frames leave through one uplink only: its pin (portid) or
//     a hash of the frame's source MAC over the uplinks carrying (mac);
//   - broadcast and multicast from outside reach a port only through its
//     pin, so each port gets one copy;
//   - a frame from outside whose source is a local port's MAC (its own
//     broadcast, flooded back by the physical switch through another uplink)
//     is dropped before the bridge could learn it.
// The kernel has no notion of that table following the uplinks' links, so a
// keeper (`vireo switch steer SWITCH`, started by `vireo switch apply`)
// re-plans it on each link or address change: the steering of the switch.

// What the keeper sees of the host when it plans.
struct SteeringView {
    std::set<std::string> with_link;  // uplinks whose link (carrier) is up
    std::vector<std::string> ports;   // the switch's ports but its uplinks
};

// Which uplinks carry traffic and which one each port uses.
struct SteeringPlan {
    // At most as many as there are active uplinks: the active ones with a
    // link, in failover order, and standby ones (with a link) in the places
    // of those that failed. Without failback, an uplink keeps its place
    // while its link lasts, even when an uplink before it returns.
    std::vector<std::string> carrying;
    // Each port's first uplink: the active uplink that had the fewest ports
    // when it was first seen. It carries the port whenever it can (and, with
    // failback, again as soon as it can).
    std::map<std::string, std::string> homes;
    // The uplink each port's frames use now (and its broadcasts come in by).
    std::map<std::string, std::string> pins;

    bool operator==(const SteeringPlan&) const = default;
};

// The plan for `view`, following on from `before` (so that ports keep their
// uplinks as long as they can, and failback is honoured).
SteeringPlan plan_steering(const VirtualSwitch& vswitch, const SteeringView& view,
                           const SteeringPlan& before);

// The nftables table `vireo-steer-SWITCH` for `plan`, as commands that
// replace it in one transaction; `local_macs` are the addresses the switch
// learned on its ports.
std::string steering_table(const VirtualSwitch& vswitch, const SteeringPlan& plan,
                           const std::vector<MacAddress>& local_macs);
std::string steering_table_name(const std::string& switch_name);

// "port -> uplink, ..." ("-" for none), for people.
std::string describe_pins(const std::map<std::string, std::string>& pins);

// The ports (pins) the host's steering table of `switch_name` holds now;
// empty when there is no table.
std::map<std::string, std::string> applied_pins(const std::string& switch_name);
// Deletes the table, if there is one.
void remove_steering_table(const std::string& switch_name);

// The keeper: watches the host's links and the switch's addresses
// (rtnetlink) and, after each change, re-reads the configuration, re-plans,
// writes the table when the plan or the local addresses changed, and, with
// notify switches, announces the MACs of each port that moved out of its
// new uplink (a RARP per MAC, tagged with its VLAN). Returns when the
// switch is deleted or no longer steered (removing the table), or when
// `stop` becomes true (leaving it). `configuration` reads the host's
// current network configuration. Logs what it does (spdlog). Throws
// vireo::Error when the host refuses a socket.
void keep_steering(const std::string& switch_name,
                   const std::function<NetworkConfig()>& configuration,
                   const std::atomic<bool>& stop);

}  // namespace vireo
