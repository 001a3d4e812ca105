#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/network_config.h"

namespace vireo {

// The VLANs of one bridge port: each VID with whether frames leave the port
// untagged, and the PVID that takes the frames arriving untagged (0: none).
struct PortVlans {
    std::map<uint16_t, bool> untagged_by_vid;
    uint16_t pvid = 0;

    bool operator==(const PortVlans&) const = default;
    // "10 untagged pvid", "1-6 tagged, 7 untagged pvid, 8-4094 tagged", "none".
    std::string describe() const;
};

// What a port of `portgroup` carries: its VLAN untagged (VLAN 0: the
// switch's native VLAN); a trunk (4095) every VLAN tagged and the native one
// untagged.
PortVlans portgroup_port_vlans(const NetworkConfig& config, const PortGroup& portgroup);
// What an uplink carries: every VLAN tagged and the native one untagged, as a
// physical switch port facing ESX is configured.
PortVlans uplink_port_vlans(const NetworkConfig& config, std::string_view switch_name);

// One port of a switch as the kernel has it. The members of a team (a bond
// of uplinks) are listed with the team, as uplinks.
struct SwitchPort {
    enum class Kind { Uplink, Team, PortGroup, Other };

    std::string name;
    Kind kind = Kind::Other;
    std::string portgroup;  // for Kind::PortGroup
    std::string team;       // for a member of a team: the team's interface
    bool up = false;
    bool link = false;  // has a carrier
    uint32_t mtu = 0;
    // A port of the bridge: whether it learns the addresses behind it, and
    // whether it is isolated (no frame between two isolated ports).
    bool learning = true;
    bool isolated = false;
    PortVlans vlans;
    TrafficShaping shaping;    // the policer on its ingress, as tc has it
    uint64_t shaped_away = 0;  // frames that policer dropped
    struct Counters {
        uint64_t packets = 0;
        uint64_t bytes = 0;
        uint64_t dropped = 0;
        uint64_t errors = 0;
    } received, sent;  // as the host counts them: what a vNIC's TAP received the VM sent
};

// A switch's team (Linux bond) as the kernel has it.
struct AppliedTeam {
    std::string mode;         // the bonding mode: active-backup, balance-xor
    std::string hash_policy;  // balance-xor's
    std::string primary;      // active-backup's first choice
    std::string primary_reselect;
    std::string carrying;  // active-backup's member in use now
};

// A switch's bridge as the kernel has it.
struct AppliedSwitch {
    bool exists = false;
    bool ours = false;  // a bridge Vireo made (its alias says so)
    bool vlan_filtering = false;
    bool floods_all = false;  // a hub: ageing time 0 (a promiscuous port group)
    bool up = false;
    uint32_t mtu = 0;
    std::vector<SwitchPort> ports;
    std::optional<AppliedTeam> team;  // when the switch's team interface exists
};

// The host kernel's side of the virtual switches: one Linux bridge per switch
// with VLAN filtering and no spanning tree (a single tier of switches cannot
// loop), its uplink enslaved, every port's VLANs and traffic shaping (tc) set
// from its port group. Teamed uplinks join a bond (the "team", NAME-team),
// which is the bridge's one port to the physical network, so that no frame
// goes from one uplink to another: active-backup for a failover order,
// balance-xor hashing MAC and IP addresses for IP hash; link status polled
// every 100 ms.
// Vireo drives it with iproute2 (`ip`, `bridge`) and reads back what is
// applied from their JSON output. Ports of VMs carry their port group in the
// interface's alias ("vireo:portgroup=NAME"), so that applying again finds
// them. Failures throw vireo::Error with the command and what it said.
class SwitchDatapath {
public:
    static constexpr std::string_view kSwitchAlias = "vireo:switch";
    static constexpr std::string_view kPortAliasPrefix = "vireo:portgroup=";
    static constexpr std::string_view kHostPortAlias = "vireo:hostport";
    static constexpr std::string_view kTeamAlias = "vireo:team";

    // Throws unless `config` can be applied on this host: each uplink exists
    // and is no other bridge's port, no switch's or host port's name is taken
    // by an interface Vireo did not make.
    static void check_applicable(const NetworkConfig& config);

    // Makes the kernel match `config` (check_applicable first): creates or updates each switch's
    // bridge, joins its uplink, sets every port's VLANs (the native VLAN moves
    // when port groups change), releases interfaces that are no longer its
    // uplinks, creates and plugs the host ports with their addresses, and
    // deletes the host ports and bridges `config` no longer has.
    // Running it twice changes nothing the second time.
    static void apply(const NetworkConfig& config);

    // Makes `interface` (a vNIC's TAP) a port of `portgroup`: on its switch,
    // at the switch's MTU, with the port group's VLANs, and up.
    static void plug(const NetworkConfig& config, const PortGroup& portgroup,
                     const std::string& interface);

    // The interfaces plugged into `portgroup` now (VMs' ports, host ports'
    // switch sides), sorted.
    static std::vector<std::string> portgroup_ports(std::string_view portgroup);

    // The switch's bridge and ports as the kernel has them now.
    static AppliedSwitch observe(const VirtualSwitch& vswitch);

    // Where `applied` (observed) differs from `config` for this switch, one
    // sentence each; empty when everything is applied.
    static std::vector<std::string> differences(const NetworkConfig& config,
                                                const VirtualSwitch& vswitch,
                                                const AppliedSwitch& applied);
};

}  // namespace vireo
