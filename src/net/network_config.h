#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace vireo {

// ESX's traffic shaping, on what a port's VM (or host port) sends into the
// switch: a token bucket filled at the average rate up to the burst size,
// drained no faster than the peak rate. Off by default, as in ESX; when on,
// a value not given takes ESX's default.
struct TrafficShaping {
    static constexpr uint64_t kDefaultAverageKbps = 100000;
    static constexpr uint64_t kDefaultPeakKbps = 100000;
    static constexpr uint64_t kDefaultBurstKib = 102400;

    bool enabled = false;
    uint64_t average_kbps = kDefaultAverageKbps;  // kbit/s
    uint64_t peak_kbps = kDefaultPeakKbps;        // kbit/s, at least the average
    uint64_t burst_kib = kDefaultBurstKib;        // KiB

    bool operator==(const TrafficShaping&) const = default;
    // "off", or "average 8000 kbit/s, peak 16000 kbit/s, burst 512 KiB".
    std::string describe() const;
};

// ESX's security policy for a vNIC, with ESX's defaults. promiscuous: the
// vNIC receives every frame of its VLAN (Reject: only frames for its own
// MAC, broadcast and multicast, whatever the guest asks). mac_changes: the
// guest may change its effective MAC (Reject: once it differs from the
// vNIC's own, every inbound frame is dropped). forged_transmits: the guest
// may send from another source MAC than its effective one (Reject: such
// frames are dropped).
struct SecurityPolicy {
    bool promiscuous = false;
    bool mac_changes = true;
    bool forged_transmits = true;

    bool operator==(const SecurityPolicy&) const = default;
    // "promiscuous reject, MAC changes accept, forged transmits accept".
    std::string describe() const;
};

// What a port group overrides of its switch's security policy, field by field.
// Its JSON (in network.json and in a vNIC's definition) is an object with
// any of "promiscuous", "mac_changes" and "forged_transmits", true = accept.
struct SecurityOverride {
    std::optional<bool> promiscuous;
    std::optional<bool> mac_changes;
    std::optional<bool> forged_transmits;

    static SecurityOverride every_field_of(const SecurityPolicy& policy);
    // `field` and `source` name the object in errors.
    static SecurityOverride from_json(const nlohmann::json& value, const std::string& field,
                                      const std::string& source);
    nlohmann::json to_json() const;

    bool empty() const { return !promiscuous && !mac_changes && !forged_transmits; }
    // `policy` with the fields this overrides replaced.
    SecurityPolicy applied_to(SecurityPolicy policy) const;
};

// ESX's NIC teaming of a switch's uplinks. Active uplinks carry the traffic;
// standby ones take over, in their order, when no active one has a link;
// unused ones carry nothing. Failure is detected by link status. The load
// balancing spreads ports over the active uplinks: by originating virtual
// port (ESX's default), by source MAC hash, by a hash of the IP addresses
// (the physical switch bundles the ports as a static EtherChannel), or not
// at all (explicit failover order: the first active uplink with a link).
// failback: an uplink whose link returns takes its place back.
struct NicTeaming {
    // esxcli's names: portid, mac, iphash, explicit.
    enum class LoadBalancing { PortId, SourceMac, IpHash, ExplicitFailover };

    LoadBalancing load_balancing = LoadBalancing::PortId;
    std::vector<std::string> standby;  // in failover order
    std::vector<std::string> unused;
    bool failback = true;
    // After a failover, each VM on the switch announces its MACs (a RARP)
    // out of the uplink that now carries it, so the physical switches learn
    // where they went at once rather than when the VM next sends.
    bool notify_switches = true;

    bool operator==(const NicTeaming&) const = default;
};

std::string_view load_balancing_name(NicTeaming::LoadBalancing policy);
std::optional<NicTeaming::LoadBalancing> load_balancing_named(std::string_view name);

// ESX's standard switch: an L2 switch on one host joining vNICs, host ports
// and uplinks (host interfaces). Its name is also the name of the Linux bridge
// that carries it, so `ip link show vSwitch0` finds it.
struct VirtualSwitch {
    static constexpr uint32_t kDefaultMtu = 1500;
    static constexpr uint32_t kMinMtu = 1280;  // ESX's range
    static constexpr uint32_t kMaxMtu = 9000;
    static constexpr size_t kTeamNamePrefix = 10;  // room for "-team"

    std::string name;
    uint32_t mtu = kDefaultMtu;
    // Every uplink; the order of the active ones is their failover order.
    std::vector<std::string> uplinks;
    TrafficShaping shaping;   // for its port groups that do not set their own
    SecurityPolicy security;  // idem, field by field
    NicTeaming teaming;

    // The uplinks neither standby nor unused, in the order of `uplinks`.
    std::vector<std::string> active_uplinks() const;
    // The active uplinks, then the standby ones: the failover order.
    std::vector<std::string> teamed_uplinks() const;
    // Load balancing by originating port or source MAC over two or more
    // active uplinks: each teamed uplink is a port of the switch of its own,
    // and the switch steers each port's frames to one of them (switch_steering.h).
    bool steered() const;
    // Otherwise two or more uplinks teamed are one bond, the switch's port to
    // the physical network; a single one is that port itself.
    bool bonded() const { return teamed_uplinks().size() > 1 && !steered(); }
    // The bond's interface: the switch's name (its first 10 characters) + "-team".
    std::string team_interface() const;
};

// A port group: the ports of one switch that share a VLAN. VLAN 0 sends and
// receives untagged frames, 1-4094 tags frames on the uplinks and hands them
// untagged to the VM, 4095 is a trunk: the VM sees every VLAN's tags.
struct PortGroup {
    static constexpr uint16_t kNoVlan = 0;
    static constexpr uint16_t kMaxVlan = 4094;
    static constexpr uint16_t kTrunk = 4095;

    std::string name;
    std::string vswitch;
    uint16_t vlan = kNoVlan;
    std::optional<TrafficShaping> shaping;  // unset: the switch's
    SecurityOverride security;
};

// ESX's VMkernel port: an IP interface of the host on a port group, for the
// host's own traffic (management, storage, tests). On Linux a veth pair: NAME
// in the host with the address, NAME-sw a port of the port group's switch.
struct HostPort {
    static constexpr size_t kMaxName = 12;  // room for "-sw" in an interface name

    std::string name;
    std::string portgroup;
    std::string address;  // "10.0.0.2/24" or "fd00::2/64"; empty: none

    std::string switch_side() const { return name + "-sw"; }
};

// The host's whole network configuration, as kept on disk. Refusals throw
// vireo::Error naming `source`, the field or object, and the rule.
struct NetworkConfig {
    std::vector<VirtualSwitch> switches;
    std::vector<PortGroup> portgroups;
    std::vector<HostPort> hostports;

    static NetworkConfig from_json(const nlohmann::json& document, const std::string& source);
    nlohmann::json to_json() const;

    const VirtualSwitch* find_switch(std::string_view name) const;
    VirtualSwitch* find_switch(std::string_view name);
    const PortGroup* find_portgroup(std::string_view name) const;
    PortGroup* find_portgroup(std::string_view name);
    std::vector<const PortGroup*> portgroups_of(std::string_view switch_name) const;
    const HostPort* find_hostport(std::string_view name) const;
    // The port group's own shaping, or its switch's.
    TrafficShaping shaping_of(const PortGroup& portgroup) const;
    // The switch's security policy with the port group's overrides.
    SecurityPolicy security_of(const PortGroup& portgroup) const;
    // Whether a port group of the switch lets its VMs see every frame: the
    // switch then floods all frames, as a hub.
    bool any_promiscuous(std::string_view switch_name) const;

    // Names unique and well formed, every port group on a switch that exists
    // and every host port on a port group that exists, VLANs in range, an
    // uplink on one switch only, host ports' addresses well formed.
    void validate(const std::string& source) const;

    // The bridge VLAN that carries a switch's untagged frames (port groups
    // with VLAN 0, the untagged side of trunks and uplinks): the lowest ID
    // none of its port groups uses, so that it never mixes with a real VLAN.
    uint16_t native_vlan(std::string_view switch_name) const;
};

// Why `name` cannot name a switch (it becomes a network interface's name), or nullopt.
std::optional<std::string> switch_name_problem(std::string_view name);
// Why `name` cannot name a port group, or nullopt: 1 to 64 of A-Z a-z 0-9 . _ -
// (no commas or spaces: it appears in `--nic portgroup=NAME,mac=...`).
std::optional<std::string> portgroup_name_problem(std::string_view name);

}  // namespace vireo
