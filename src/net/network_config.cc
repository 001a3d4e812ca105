#include "net/network_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <set>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/json_object_reader.h"
#include "net/interface_name.h"

namespace vireo {

namespace {

using nlohmann::json;

constexpr size_t kMaxPortgroupName = 64;

// The list under `key`; empty when absent.
const json& list_field(ObjectReader& reader, const std::string& key, const std::string& source) {
    static const json empty = json::array();
    const json* value = reader.find(key);
    if (value == nullptr) {
        return empty;
    }
    if (!value->is_array()) {
        fail("{}: {}: must be a list, not {}", source, key, value->type_name());
    }
    return *value;
}

TrafficShaping parse_shaping(ObjectReader& parent, const json& value, const std::string& source) {
    ObjectReader reader(value, parent.field("shaping"), source);
    TrafficShaping shaping;
    shaping.enabled = reader.boolean("enabled").value_or(true);
    constexpr uint64_t kMaxKbps = 100'000'000;  // 100 Gbit/s
    shaping.average_kbps = reader.unsigned_integer("average_kbps", 1, kMaxKbps)
                               .value_or(TrafficShaping::kDefaultAverageKbps);
    shaping.peak_kbps =
        reader.unsigned_integer("peak_kbps", 1, kMaxKbps)
            .value_or(std::max(shaping.average_kbps, TrafficShaping::kDefaultPeakKbps));
    shaping.burst_kib = reader.unsigned_integer("burst_kib", 1, 4 * 1024 * 1024)
                            .value_or(TrafficShaping::kDefaultBurstKib);
    if (shaping.peak_kbps < shaping.average_kbps) {
        reader.error("peak_kbps", "{} is below the average ({}): the peak is at least the average",
                     shaping.peak_kbps, shaping.average_kbps);
    }
    reader.refuse_unknown_fields();
    return shaping;
}

json shaping_json(const TrafficShaping& shaping) {
    return {{"enabled", shaping.enabled},
            {"average_kbps", shaping.average_kbps},
            {"peak_kbps", shaping.peak_kbps},
            {"burst_kib", shaping.burst_kib}};
}

std::vector<std::string> interface_list(ObjectReader& reader, const std::string& key,
                                        std::string_view what) {
    std::vector<std::string> names;
    if (const json* list = reader.find(key)) {
        if (!list->is_array()) {
            reader.error(key, "must be a list of {}, not {}", what, list->type_name());
        }
        for (const json& name : *list) {
            if (!name.is_string()) {
                reader.error(key, "must be a list of {}, not {}", what, name.dump());
            }
            names.push_back(name.get<std::string>());
        }
    }
    return names;
}

NicTeaming parse_teaming(ObjectReader& parent, const json& value, const std::string& source) {
    ObjectReader reader(value, parent.field("teaming"), source);
    NicTeaming teaming;
    if (auto name = reader.string("load_balancing")) {
        auto policy = load_balancing_named(*name);
        if (!policy) {
            reader.error("load_balancing", "'{}' is not one of portid, mac, iphash, explicit",
                         *name);
        }
        teaming.load_balancing = *policy;
    }
    teaming.standby = interface_list(reader, "standby", "uplink names");
    teaming.unused = interface_list(reader, "unused", "uplink names");
    teaming.failback = reader.boolean("failback").value_or(true);
    teaming.notify_switches = reader.boolean("notify_switches").value_or(true);
    reader.refuse_unknown_fields();
    return teaming;
}

json teaming_json(const NicTeaming& teaming) {
    return {{"load_balancing", load_balancing_name(teaming.load_balancing)},
            {"standby", teaming.standby},
            {"unused", teaming.unused},
            {"failback", teaming.failback},
            {"notify_switches", teaming.notify_switches}};
}

bool contains(const std::vector<std::string>& names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

// Standby and unused uplinks are uplinks of the switch, each in one role,
// and the load balancing can use the uplinks it is given.
void validate_teaming(const VirtualSwitch& vswitch, const std::string& source) {
    const NicTeaming& teaming = vswitch.teaming;
    std::set<std::string> roles;
    for (const auto* list : {&teaming.standby, &teaming.unused}) {
        for (const std::string& uplink : *list) {
            if (!contains(vswitch.uplinks, uplink)) {
                fail("{}: switch '{}': teaming: {} is not one of its uplinks ({})", source,
                     vswitch.name, uplink, fmt::join(vswitch.uplinks, ", "));
            }
            if (!roles.insert(uplink).second) {
                fail(
                    "{}: switch '{}': teaming: uplink {} is listed twice (an uplink is active, "
                    "standby or unused)",
                    source, vswitch.name, uplink);
            }
        }
    }
    size_t active = vswitch.active_uplinks().size();
    if (!vswitch.uplinks.empty() && active == 0) {
        fail("{}: switch '{}': teaming: no active uplink; at least one must be active", source,
             vswitch.name);
    }
    using LoadBalancing = NicTeaming::LoadBalancing;
    if (teaming.load_balancing == LoadBalancing::IpHash && !teaming.standby.empty()) {
        fail(
            "{}: switch '{}': teaming: IP hash spreads traffic over every active uplink of an "
            "EtherChannel and takes no standby uplinks ({}); make them active or unused",
            source, vswitch.name, fmt::join(teaming.standby, ", "));
    }
}

VirtualSwitch parse_switch(const json& value, size_t index, const std::string& source) {
    ObjectReader reader(value, fmt::format("switches[{}]", index), source);
    VirtualSwitch vswitch;
    vswitch.name = reader.required_string("name", "the switch's name, e.g. vSwitch0");
    vswitch.mtu = static_cast<uint32_t>(
        reader.unsigned_integer("mtu", VirtualSwitch::kMinMtu, VirtualSwitch::kMaxMtu)
            .value_or(VirtualSwitch::kDefaultMtu));
    vswitch.uplinks = interface_list(reader, "uplinks", "host interface names");
    if (const json* teaming = reader.find("teaming")) {
        vswitch.teaming = parse_teaming(reader, *teaming, source);
    }
    if (const json* shaping = reader.find("shaping")) {
        vswitch.shaping = parse_shaping(reader, *shaping, source);
    }
    if (const json* security = reader.find("security")) {
        vswitch.security = SecurityOverride::from_json(*security, reader.field("security"), source)
                               .applied_to(SecurityPolicy{});
    }
    reader.refuse_unknown_fields();
    return vswitch;
}

PortGroup parse_portgroup(const json& value, size_t index, const std::string& source) {
    ObjectReader reader(value, fmt::format("portgroups[{}]", index), source);
    PortGroup portgroup;
    portgroup.name = reader.required_string("name", "the port group's name, e.g. VM-Network");
    portgroup.vswitch = reader.required_string("switch", "the switch the port group is on");
    portgroup.vlan =
        static_cast<uint16_t>(reader.unsigned_integer("vlan", PortGroup::kNoVlan, PortGroup::kTrunk)
                                  .value_or(PortGroup::kNoVlan));
    if (const json* shaping = reader.find("shaping")) {
        portgroup.shaping = parse_shaping(reader, *shaping, source);
    }
    if (const json* security = reader.find("security")) {
        portgroup.security =
            SecurityOverride::from_json(*security, reader.field("security"), source);
    }
    reader.refuse_unknown_fields();
    return portgroup;
}

HostPort parse_hostport(const json& value, size_t index, const std::string& source) {
    ObjectReader reader(value, fmt::format("hostports[{}]", index), source);
    HostPort hostport;
    hostport.name = reader.required_string("name", "the host interface's name, e.g. vmk0");
    hostport.portgroup = reader.required_string("portgroup", "the port group the host port is on");
    hostport.address = reader.string("address").value_or("");
    reader.refuse_unknown_fields();
    return hostport;
}

// Why `address` is not an IPv4 or IPv6 address with a prefix length, or nullopt.
std::optional<std::string> address_problem(const std::string& address) {
    size_t slash = address.find('/');
    std::string ip = address.substr(0, slash);
    unsigned char bytes[16];
    int family = ip.find(':') == std::string::npos ? AF_INET : AF_INET6;
    unsigned max_prefix = family == AF_INET ? 32 : 128;
    std::string prefix = slash == std::string::npos ? "" : address.substr(slash + 1);
    bool prefix_ok = !prefix.empty() && prefix.size() <= 3 &&
                     std::all_of(prefix.begin(), prefix.end(), ::isdigit) &&
                     std::stoul(prefix) <= max_prefix;
    if (inet_pton(family, ip.c_str(), bytes) != 1 || !prefix_ok) {
        return fmt::format(
            "'{}' is not an address with its prefix length (10.0.0.2/24, "
            "fd00::2/64)",
            address);
    }
    return std::nullopt;
}

template <typename Item>
Item* find_named(std::vector<Item>& items, std::string_view name) {
    auto it = std::find_if(items.begin(), items.end(),
                           [&](const Item& item) { return item.name == name; });
    return it == items.end() ? nullptr : &*it;
}

}  // namespace

std::optional<std::string> switch_name_problem(std::string_view name) {
    return interface_name_problem(name);
}

std::optional<std::string> portgroup_name_problem(std::string_view name) {
    bool valid_chars = std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.';
    });
    if (name.empty() || name.size() > kMaxPortgroupName || !valid_chars) {
        return fmt::format("'{}': a port group's name is 1 to {} of A-Z a-z 0-9 . _ -", name,
                           kMaxPortgroupName);
    }
    return std::nullopt;
}

NetworkConfig NetworkConfig::from_json(const json& document, const std::string& source) {
    ObjectReader reader(document, "", source);
    NetworkConfig config;
    const json& switches = list_field(reader, "switches", source);
    for (size_t i = 0; i < switches.size(); ++i) {
        config.switches.push_back(parse_switch(switches[i], i, source));
    }
    const json& portgroups = list_field(reader, "portgroups", source);
    for (size_t i = 0; i < portgroups.size(); ++i) {
        config.portgroups.push_back(parse_portgroup(portgroups[i], i, source));
    }
    const json& hostports = list_field(reader, "hostports", source);
    for (size_t i = 0; i < hostports.size(); ++i) {
        config.hostports.push_back(parse_hostport(hostports[i], i, source));
    }
    reader.refuse_unknown_fields();
    config.validate(source);
    return config;
}

json NetworkConfig::to_json() const {
    json switch_list = json::array();
    for (const VirtualSwitch& vswitch : switches) {
        switch_list.push_back(
            {{"name", vswitch.name},
             {"mtu", vswitch.mtu},
             {"uplinks", vswitch.uplinks},
             {"shaping", shaping_json(vswitch.shaping)},
             {"security", SecurityOverride::every_field_of(vswitch.security).to_json()},
             {"teaming", teaming_json(vswitch.teaming)}});
    }
    json portgroup_list = json::array();
    for (const PortGroup& portgroup : portgroups) {
        json entry = {
            {"name", portgroup.name}, {"switch", portgroup.vswitch}, {"vlan", portgroup.vlan}};
        if (portgroup.shaping) {
            entry["shaping"] = shaping_json(*portgroup.shaping);
        }
        if (!portgroup.security.empty()) {
            entry["security"] = portgroup.security.to_json();
        }
        portgroup_list.push_back(entry);
    }
    json hostport_list = json::array();
    for (const HostPort& hostport : hostports) {
        hostport_list.push_back({{"name", hostport.name},
                                 {"portgroup", hostport.portgroup},
                                 {"address", hostport.address}});
    }
    return {
        {"switches", switch_list}, {"portgroups", portgroup_list}, {"hostports", hostport_list}};
}

const VirtualSwitch* NetworkConfig::find_switch(std::string_view name) const {
    return const_cast<NetworkConfig*>(this)->find_switch(name);
}

VirtualSwitch* NetworkConfig::find_switch(std::string_view name) {
    return find_named(switches, name);
}

const PortGroup* NetworkConfig::find_portgroup(std::string_view name) const {
    return const_cast<NetworkConfig*>(this)->find_portgroup(name);
}

PortGroup* NetworkConfig::find_portgroup(std::string_view name) {
    return find_named(portgroups, name);
}

const HostPort* NetworkConfig::find_hostport(std::string_view name) const {
    auto it = std::find_if(hostports.begin(), hostports.end(),
                           [&](const HostPort& hostport) { return hostport.name == name; });
    return it == hostports.end() ? nullptr : &*it;
}

namespace {
constexpr std::pair<NicTeaming::LoadBalancing, std::string_view> kLoadBalancingNames[] = {
    {NicTeaming::LoadBalancing::PortId, "portid"},
    {NicTeaming::LoadBalancing::SourceMac, "mac"},
    {NicTeaming::LoadBalancing::IpHash, "iphash"},
    {NicTeaming::LoadBalancing::ExplicitFailover, "explicit"},
};
}  // namespace

std::string_view load_balancing_name(NicTeaming::LoadBalancing policy) {
    for (const auto& [value, name] : kLoadBalancingNames) {
        if (value == policy) {
            return name;
        }
    }
    return "?";
}

std::optional<NicTeaming::LoadBalancing> load_balancing_named(std::string_view wanted) {
    for (const auto& [value, name] : kLoadBalancingNames) {
        if (name == wanted) {
            return value;
        }
    }
    return std::nullopt;
}

std::vector<std::string> VirtualSwitch::active_uplinks() const {
    std::vector<std::string> active;
    for (const std::string& uplink : uplinks) {
        if (!contains(teaming.standby, uplink) && !contains(teaming.unused, uplink)) {
            active.push_back(uplink);
        }
    }
    return active;
}

std::vector<std::string> VirtualSwitch::teamed_uplinks() const {
    std::vector<std::string> teamed = active_uplinks();
    teamed.insert(teamed.end(), teaming.standby.begin(), teaming.standby.end());
    return teamed;
}

bool VirtualSwitch::steered() const {
    return (teaming.load_balancing == NicTeaming::LoadBalancing::PortId ||
            teaming.load_balancing == NicTeaming::LoadBalancing::SourceMac) &&
           active_uplinks().size() > 1;
}

std::string VirtualSwitch::team_interface() const {
    return name.substr(0, kTeamNamePrefix) + "-team";
}

std::string TrafficShaping::describe() const {
    if (!enabled) {
        return "off";
    }
    return fmt::format("average {} kbit/s, peak {} kbit/s, burst {} KiB", average_kbps, peak_kbps,
                       burst_kib);
}

TrafficShaping NetworkConfig::shaping_of(const PortGroup& portgroup) const {
    if (portgroup.shaping) {
        return *portgroup.shaping;
    }
    const VirtualSwitch* vswitch = find_switch(portgroup.vswitch);
    return vswitch != nullptr ? vswitch->shaping : TrafficShaping{};
}

std::string SecurityPolicy::describe() const {
    auto word = [](bool accept) { return accept ? "accept" : "reject"; };
    return fmt::format("promiscuous {}, MAC changes {}, forged transmits {}", word(promiscuous),
                       word(mac_changes), word(forged_transmits));
}

SecurityOverride SecurityOverride::every_field_of(const SecurityPolicy& policy) {
    return {policy.promiscuous, policy.mac_changes, policy.forged_transmits};
}

namespace {
const char* kSecurityFields[] = {"promiscuous", "mac_changes", "forged_transmits"};
}

SecurityOverride SecurityOverride::from_json(const json& value, const std::string& field,
                                             const std::string& source) {
    ObjectReader reader(value, field, source);
    SecurityOverride found;
    found.promiscuous = reader.boolean(kSecurityFields[0]);
    found.mac_changes = reader.boolean(kSecurityFields[1]);
    found.forged_transmits = reader.boolean(kSecurityFields[2]);
    reader.refuse_unknown_fields();
    return found;
}

json SecurityOverride::to_json() const {
    json fields = json::object();
    const std::optional<bool>* values[] = {&promiscuous, &mac_changes, &forged_transmits};
    for (size_t i = 0; i < 3; ++i) {
        if (*values[i]) {
            fields[kSecurityFields[i]] = **values[i];
        }
    }
    return fields;
}

SecurityPolicy SecurityOverride::applied_to(SecurityPolicy policy) const {
    policy.promiscuous = promiscuous.value_or(policy.promiscuous);
    policy.mac_changes = mac_changes.value_or(policy.mac_changes);
    policy.forged_transmits = forged_transmits.value_or(policy.forged_transmits);
    return policy;
}

SecurityPolicy NetworkConfig::security_of(const PortGroup& portgroup) const {
    const VirtualSwitch* vswitch = find_switch(portgroup.vswitch);
    return portgroup.security.applied_to(vswitch != nullptr ? vswitch->security : SecurityPolicy{});
}

bool NetworkConfig::any_promiscuous(std::string_view switch_name) const {
    for (const PortGroup* portgroup : portgroups_of(switch_name)) {
        if (security_of(*portgroup).promiscuous) {
            return true;
        }
    }
    return false;
}

std::vector<const PortGroup*> NetworkConfig::portgroups_of(std::string_view switch_name) const {
    std::vector<const PortGroup*> found;
    for (const PortGroup& portgroup : portgroups) {
        if (portgroup.vswitch == switch_name) {
            found.push_back(&portgroup);
        }
    }
    return found;
}

void NetworkConfig::validate(const std::string& source) const {
    std::set<std::string> switch_names;
    std::set<std::string> uplinks;
    for (const VirtualSwitch& vswitch : switches) {
        if (auto problem = switch_name_problem(vswitch.name)) {
            fail("{}: switch {}", source, *problem);
        }
        if (!switch_names.insert(vswitch.name).second) {
            fail("{}: switch '{}' is defined twice", source, vswitch.name);
        }
        if (vswitch.mtu < VirtualSwitch::kMinMtu || vswitch.mtu > VirtualSwitch::kMaxMtu) {
            fail("{}: switch '{}': MTU {} is out of range ({} to {})", source, vswitch.name,
                 vswitch.mtu, VirtualSwitch::kMinMtu, VirtualSwitch::kMaxMtu);
        }
        validate_teaming(vswitch, source);
        for (const std::string& uplink : vswitch.uplinks) {
            if (auto problem = interface_name_problem(uplink)) {
                fail("{}: switch '{}': uplink {}", source, vswitch.name, *problem);
            }
            if (!uplinks.insert(uplink).second) {
                fail("{}: uplink {} is on two switches; an interface joins one switch", source,
                     uplink);
            }
        }
    }
    for (const std::string& uplink : uplinks) {
        if (switch_names.contains(uplink)) {
            fail("{}: '{}' is both a switch and an uplink", source, uplink);
        }
    }
    std::set<std::string> teams;
    for (const VirtualSwitch& vswitch : switches) {
        std::string team = vswitch.team_interface();
        if (!vswitch.bonded()) {
            continue;
        }
        if (!teams.insert(team).second || switch_names.contains(team) || uplinks.contains(team)) {
            fail(
                "{}: switch '{}': its team interface {} has the name of another switch's, a "
                "switch or an uplink; switches whose names share their first {} characters "
                "cannot both team uplinks",
                source, vswitch.name, team, VirtualSwitch::kTeamNamePrefix);
        }
    }
    std::set<std::string> portgroup_names;
    for (const PortGroup& portgroup : portgroups) {
        if (auto problem = portgroup_name_problem(portgroup.name)) {
            fail("{}: port group {}", source, *problem);
        }
        if (!portgroup_names.insert(portgroup.name).second) {
            fail("{}: port group '{}' is defined twice (names are unique on a host)", source,
                 portgroup.name);
        }
        if (!switch_names.contains(portgroup.vswitch)) {
            fail("{}: port group '{}': no switch '{}'", source, portgroup.name, portgroup.vswitch);
        }
        if (portgroup.vlan > PortGroup::kTrunk) {
            fail("{}: port group '{}': VLAN {} is out of range (0 none, 1-4094, 4095 trunk)",
                 source, portgroup.name, portgroup.vlan);
        }
    }
    std::set<std::string> hostport_names;
    for (const HostPort& hostport : hostports) {
        if (auto problem = interface_name_problem(hostport.name)) {
            fail("{}: host port {}", source, *problem);
        }
        if (hostport.name.size() > HostPort::kMaxName) {
            fail(
                "{}: host port '{}': a host port's name has at most {} characters (its switch "
                "side is NAME-sw)",
                source, hostport.name, HostPort::kMaxName);
        }
        if (!hostport_names.insert(hostport.name).second) {
            fail("{}: host port '{}' is defined twice", source, hostport.name);
        }
        if (switch_names.contains(hostport.name) || uplinks.contains(hostport.name)) {
            fail("{}: host port '{}' has the name of a switch or an uplink", source, hostport.name);
        }
        if (!portgroup_names.contains(hostport.portgroup)) {
            fail("{}: host port '{}': no port group '{}'", source, hostport.name,
                 hostport.portgroup);
        }
        if (auto problem =
                hostport.address.empty() ? std::nullopt : address_problem(hostport.address)) {
            fail("{}: host port '{}': {}", source, hostport.name, *problem);
        }
    }
    for (const VirtualSwitch& vswitch : switches) {
        if (native_vlan(vswitch.name) > PortGroup::kMaxVlan) {
            fail(
                "{}: switch '{}': its port groups use every VLAN from 1 to 4094; one must stay "
                "free to carry its untagged frames",
                source, vswitch.name);
        }
    }
}

uint16_t NetworkConfig::native_vlan(std::string_view switch_name) const {
    std::set<uint16_t> used;
    for (const PortGroup* portgroup : portgroups_of(switch_name)) {
        if (portgroup->vlan != PortGroup::kNoVlan && portgroup->vlan != PortGroup::kTrunk) {
            used.insert(portgroup->vlan);
        }
    }
    uint16_t vlan = 1;
    while (used.contains(vlan)) {
        ++vlan;  // 4095 when all are used, which validate() refuses
    }
    return vlan;
}

}  // namespace vireo
