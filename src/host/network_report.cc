#include "host/network_report.h"

#include <fmt/format.h>

#include "host/steering_keepers.h"
#include "net/switch_datapath.h"
#include "net/switch_steering.h"

namespace vireo {
namespace {

using nlohmann::json;

json counters_json(const SwitchPort::Counters& counters) {
    return {{"packets", counters.packets},
            {"bytes", counters.bytes},
            {"dropped", counters.dropped},
            {"errors", counters.errors}};
}

const char* kind_name(SwitchPort::Kind kind) {
    switch (kind) {
        case SwitchPort::Kind::Uplink:
            return "uplink";
        case SwitchPort::Kind::Team:
            return "team";
        case SwitchPort::Kind::PortGroup:
            return "port";
        case SwitchPort::Kind::Other:
            break;
    }
    return "other";
}

}  // namespace

json portgroup_report(const NetworkConfig& config, const PortGroup& portgroup) {
    return {{"name", portgroup.name},
            {"switch", portgroup.vswitch},
            {"vlan", portgroup.vlan},
            {"shaping", config.shaping_of(portgroup).describe()},
            {"shaping_from_switch", !portgroup.shaping.has_value()},
            {"security", config.security_of(portgroup).describe()},
            {"ports", SwitchDatapath::portgroup_ports(portgroup.name)}};
}

json switch_report(const NetworkConfig& config, const VirtualSwitch& vswitch, bool with_ports,
                   const std::filesystem::path& state_dir) {
    json portgroups = json::array();
    for (const PortGroup* portgroup : config.portgroups_of(vswitch.name)) {
        portgroups.push_back(portgroup->name);
    }
    AppliedSwitch applied = SwitchDatapath::observe(vswitch);
    std::vector<std::string> differences = SwitchDatapath::differences(config, vswitch, applied);
    const NicTeaming& teaming = vswitch.teaming;
    json team = nullptr;
    if (applied.team) {
        team = {{"interface", vswitch.team_interface()},
                {"mode", applied.team->mode},
                {"hash_policy", applied.team->hash_policy},
                {"carrying", applied.team->carrying}};
    }
    json steering = nullptr;
    if (vswitch.steered()) {
        std::optional<pid_t> keeper = SteeringKeepers(state_dir).running(vswitch.name);
        std::map<std::string, std::string> pins = applied_pins(vswitch.name);
        steering = {{"keeper", keeper ? json(*keeper) : json(nullptr)}, {"pins", pins}};
        if (!keeper) {
            differences.push_back("no keeper steers its ports (`vireo switch apply` starts one)");
        }
        for (const SwitchPort& port : applied.ports) {
            if (port.kind != SwitchPort::Kind::Uplink && port.kind != SwitchPort::Kind::Team &&
                !pins.contains(port.name) && keeper) {
                differences.push_back(fmt::format("port {} is steered to no uplink", port.name));
            }
        }
    }
    json entry = {{"name", vswitch.name},
                  {"mtu", vswitch.mtu},
                  {"uplinks", vswitch.uplinks},
                  {"teaming",
                   {{"load_balancing", load_balancing_name(teaming.load_balancing)},
                    {"active", vswitch.active_uplinks()},
                    {"standby", teaming.standby},
                    {"unused", teaming.unused},
                    {"failback", teaming.failback},
                    {"notify_switches", teaming.notify_switches},
                    {"team", team},
                    {"steering", steering}}},
                  {"portgroups", portgroups},
                  {"native_vlan", config.native_vlan(vswitch.name)},
                  {"shaping", vswitch.shaping.describe()},
                  {"security", vswitch.security.describe()},
                  {"applied", differences.empty()},
                  {"differences", differences}};
    if (with_ports) {
        json ports = json::array();
        for (const SwitchPort& port : applied.ports) {
            ports.push_back({{"name", port.name},
                             {"kind", kind_name(port.kind)},
                             {"portgroup", port.portgroup},
                             {"team", port.team},
                             {"link", port.link},
                             {"up", port.up},
                             {"mtu", port.mtu},
                             {"vlans", port.vlans.describe()},
                             {"shaping", port.shaping.describe()},
                             {"shaped_away", port.shaped_away},
                             {"received", counters_json(port.received)},
                             {"sent", counters_json(port.sent)}});
        }
        entry["ports"] = ports;
    }
    return entry;
}

json hostport_report(const HostPort& hostport) {
    return {{"name", hostport.name},
            {"portgroup", hostport.portgroup},
            {"address", hostport.address},
            {"switch_side", hostport.switch_side()}};
}

}  // namespace vireo
