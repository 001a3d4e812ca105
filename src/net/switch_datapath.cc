#include "net/switch_datapath.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/subprocess.h"
#include "net/switch_steering.h"

namespace vireo {

namespace {

using nlohmann::json;

std::string command_line(const std::vector<std::string>& argv) {
    std::string line;
    for (const std::string& arg : argv) {
        line += (line.empty() ? "" : " ") + arg;
    }
    return line;
}

std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

std::string run(const std::vector<std::string>& argv, const std::string& input = "") {
    ProcessResult result = run_process(argv, input);
    if (result.status != 0) {
        fail("`{}` failed (exit status {}): {}", command_line(argv), result.status,
             trimmed(result.err.empty() ? result.out : result.err));
    }
    return result.out;
}

// `bridge -batch -`: many VLAN changes in one process.
void bridge_batch(const std::vector<std::string>& lines) {
    if (lines.empty()) {
        return;
    }
    std::string input;
    for (const std::string& line : lines) {
        input += line + "\n";
    }
    ProcessResult result = run_process({"bridge", "-batch", "-"}, input);
    if (result.status != 0) {
        fail("`bridge -batch -` failed (exit status {}) on:\n{}{}", result.status, input,
             trimmed(result.err));
    }
}

json parse_output(const std::vector<std::string>& argv, const std::string& text) {
    try {
        return text.empty() ? json::array() : json::parse(text);
    } catch (const json::exception& e) {
        fail("`{}` printed what is not JSON: {}", command_line(argv), e.what());
    }
}

json query(const std::vector<std::string>& argv) {
    return parse_output(argv, run(argv));
}

// Every interface of the host, with details and counters.
json all_links() {
    return query({"ip", "-json", "-details", "-statistics", "link", "show"});
}

const json* find_link(const json& links, std::string_view name) {
    for (const json& link : links) {
        if (link.value("ifname", "") == name) {
            return &link;
        }
    }
    return nullptr;
}

std::string kind_of(const json& link) {
    return link.contains("linkinfo") ? link["linkinfo"].value("info_kind", "") : "";
}

bool is_up(const json& link) {
    const json& flags = link.value("flags", json::array());
    return std::find(flags.begin(), flags.end(), "UP") != flags.end();
}

bool has_carrier(const json& link) {
    const json& flags = link.value("flags", json::array());
    return std::find(flags.begin(), flags.end(), "LOWER_UP") != flags.end();
}

bool contains(const std::vector<std::string>& names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

// `ip -details` data of a link's kind ("info_data") or of its master's kind
// ("info_slave_data"); empty when it has none.
const json& link_info(const json& link, const char* key) {
    static const json none = json::object();
    if (!link.contains("linkinfo") || !link["linkinfo"].contains(key)) {
        return none;
    }
    return link["linkinfo"][key];
}

// A port's VLANs from `bridge -json vlan show`, ranges ("vlanEnd") included.
PortVlans read_port_vlans(std::string_view port) {
    std::vector<std::string> argv = {"bridge", "-json", "vlan", "show", "dev", std::string(port)};
    PortVlans vlans;
    for (const json& entry : query(argv)) {
        for (const json& vlan : entry.value("vlans", json::array())) {
            uint16_t first = vlan.value("vlan", 0);
            uint16_t last = vlan.value("vlanEnd", first);
            const json& flags = vlan.value("flags", json::array());
            bool untagged = std::find(flags.begin(), flags.end(), "Egress Untagged") != flags.end();
            bool pvid = std::find(flags.begin(), flags.end(), "PVID") != flags.end();
            for (uint32_t vid = first; vid <= last; ++vid) {
                vlans.untagged_by_vid[static_cast<uint16_t>(vid)] = untagged;
            }
            if (pvid) {
                vlans.pvid = first;
            }
        }
    }
    return vlans;
}

// Consecutive VIDs that share a property, as "a-b" (or "a") ranges.
std::vector<std::pair<uint16_t, uint16_t>> ranges(const std::vector<uint16_t>& sorted_vids) {
    std::vector<std::pair<uint16_t, uint16_t>> found;
    for (uint16_t vid : sorted_vids) {
        if (!found.empty() && found.back().second + 1 == vid) {
            found.back().second = vid;
        } else {
            found.emplace_back(vid, vid);
        }
    }
    return found;
}

std::string range_text(std::pair<uint16_t, uint16_t> range) {
    return range.first == range.second ? fmt::format("{}", range.first)
                                       : fmt::format("{}-{}", range.first, range.second);
}

// The `bridge` commands that turn a port's `current` VLANs into `wanted`.
std::vector<std::string> vlan_changes(std::string_view port, const PortVlans& current,
                                      const PortVlans& wanted) {
    std::vector<uint16_t> removed;
    std::vector<uint16_t> tagged;
    std::vector<uint16_t> untagged;
    for (const auto& [vid, is_untagged] : current.untagged_by_vid) {
        if (!wanted.untagged_by_vid.contains(vid)) {
            removed.push_back(vid);
        }
    }
    for (const auto& [vid, is_untagged] : wanted.untagged_by_vid) {
        auto now = current.untagged_by_vid.find(vid);
        bool pvid_changes = (vid == wanted.pvid) != (vid == current.pvid);
        if (now != current.untagged_by_vid.end() && now->second == is_untagged && !pvid_changes) {
            continue;
        }
        if (vid != wanted.pvid) {
            (is_untagged ? untagged : tagged).push_back(vid);
        }
    }
    std::vector<std::string> lines;
    for (auto range : ranges(removed)) {
        lines.push_back(fmt::format("vlan del dev {} vid {}", port, range_text(range)));
    }
    for (auto range : ranges(tagged)) {
        lines.push_back(fmt::format("vlan add dev {} vid {}", port, range_text(range)));
    }
    for (auto range : ranges(untagged)) {
        lines.push_back(fmt::format("vlan add dev {} vid {} untagged", port, range_text(range)));
    }
    if (wanted.pvid != 0 &&
        (current.pvid != wanted.pvid || current.untagged_by_vid.count(wanted.pvid) == 0 ||
         current.untagged_by_vid.at(wanted.pvid) != wanted.untagged_by_vid.at(wanted.pvid))) {
        lines.push_back(fmt::format("vlan add dev {} vid {} pvid{}", port, wanted.pvid,
                                    wanted.untagged_by_vid.at(wanted.pvid) ? " untagged" : ""));
    }
    return lines;
}

void set_port_vlans(std::string_view port, const PortVlans& wanted) {
    bridge_batch(vlan_changes(port, read_port_vlans(port), wanted));
}

// What a port sends into the switch arrives on its ingress: a policer there
// (tc's police action: rate, burst, peakrate) is ESX's shaper. The largest
// frame a TAP passes is a 64 KiB segmentation-offloaded one.
void set_port_shaping(const std::string& port, const TrafficShaping& shaping) {
    ProcessResult ingress = run_process({"tc", "qdisc", "show", "dev", port, "ingress"});
    bool has_ingress = ingress.out.find("ingress") != std::string::npos;
    if (!shaping.enabled) {
        if (has_ingress) {
            run({"tc", "qdisc", "del", "dev", port, "ingress"});
        }
        return;
    }
    if (!has_ingress) {
        run({"tc", "qdisc", "add", "dev", port, "ingress"});
    }
    run({"tc",
         "filter",
         "replace",
         "dev",
         port,
         "ingress",
         "prio",
         "1",
         "handle",
         "1",
         "matchall",
         "action",
         "police",
         "rate",
         fmt::format("{}kbit", shaping.average_kbps),
         "burst",
         fmt::format("{}kb", shaping.burst_kib),
         "peakrate",
         fmt::format("{}kbit", shaping.peak_kbps),
         "mtu",
         "64kb",
         "conform-exceed",
         "drop"});
}

// tc's "8Mbit", "100Kb", "1500b": a rate in kbit/s (1000s) or a size in KiB (1024s).
std::optional<uint64_t> tc_quantity(const std::string& text, bool rate) {
    size_t digits = 0;
    while (digits < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
        ++digits;
    }
    if (digits == 0) {
        return std::nullopt;
    }
    double value = std::stod(text.substr(0, digits));
    std::string unit = text.substr(digits);
    double scale = rate ? 1000.0 : 1024.0;
    std::map<std::string, double> units =
        rate ? std::map<std::string, double>{{"bit", 1 / scale},
                                             {"Kbit", 1},
                                             {"Mbit", scale},
                                             {"Gbit", scale * scale}}
             : std::map<std::string, double>{
                   {"b", 1 / scale}, {"Kb", 1}, {"Mb", scale}, {"Gb", scale * scale}};
    auto found = units.find(unit);
    if (found == units.end()) {
        return std::nullopt;
    }
    return static_cast<uint64_t>(value * found->second + 0.5);
}

// The policer on a port's ingress, as tc prints it, and what it dropped.
TrafficShaping read_port_shaping(const std::string& port, uint64_t& dropped) {
    TrafficShaping shaping;
    ProcessResult shown = run_process({"tc", "-s", "filter", "show", "dev", port, "ingress"});
    std::istringstream words(shown.out);
    std::string word;
    while (words >> word) {
        std::string value;
        if (word == "police") {
            shaping.enabled = true;
        } else if (shaping.enabled && (word == "rate" || word == "peakrate" || word == "burst") &&
                   words >> value) {
            uint64_t amount = tc_quantity(value, word != "burst").value_or(0);
            (word == "rate"       ? shaping.average_kbps
             : word == "peakrate" ? shaping.peak_kbps
                                  : shaping.burst_kib) = amount;
        } else if (word == "(dropped" && words >> value) {
            dropped = std::strtoull(value.c_str(), nullptr, 10);
        }
    }
    return shaping;
}

// Rates and sizes as tc rounds them for printing: within 1%.
bool same_shaping(const TrafficShaping& applied, const TrafficShaping& wanted) {
    if (applied.enabled != wanted.enabled || !wanted.enabled) {
        return applied.enabled == wanted.enabled;
    }
    auto close = [](uint64_t a, uint64_t b) { return a * 100 >= b * 99 && a * 99 <= b * 100; };
    return close(applied.average_kbps, wanted.average_kbps) &&
           close(applied.peak_kbps, wanted.peak_kbps) && close(applied.burst_kib, wanted.burst_kib);
}

std::optional<std::string> portgroup_of(const json& link) {
    std::string alias = link.value("ifalias", "");
    if (!alias.starts_with(SwitchDatapath::kPortAliasPrefix)) {
        return std::nullopt;
    }
    return alias.substr(SwitchDatapath::kPortAliasPrefix.size());
}

bool is_our_switch(const json& link) {
    return kind_of(link) == "bridge" && link.value("ifalias", "") == SwitchDatapath::kSwitchAlias;
}

// A bridge that forgets every address at once floods every frame to every
// port of its VLAN: a hub, which a promiscuous port group needs to see the
// frames of the others. Otherwise Linux's default: 300 s.
std::string ageing_centiseconds(const NetworkConfig& config, const VirtualSwitch& vswitch) {
    return config.any_promiscuous(vswitch.name) ? "0" : "30000";
}

void apply_bridge(const NetworkConfig& config, const VirtualSwitch& vswitch, const json* link) {
    run({"ip", "link", link == nullptr ? "add" : "set", link == nullptr ? "name" : "dev",
         vswitch.name, "type", "bridge", "vlan_filtering", "1", "vlan_default_pvid", "0",
         "stp_state", "0", "ageing_time", ageing_centiseconds(config, vswitch)});
    run({"ip", "link", "set", "dev", vswitch.name, "mtu", std::to_string(vswitch.mtu), "alias",
         std::string(SwitchDatapath::kSwitchAlias), "up"});
}

// The switch's ports to the physical network: its team, or its teamed
// uplinks (one, or several steered).
std::vector<std::string> bridge_uplinks(const VirtualSwitch& vswitch) {
    return vswitch.bonded() ? std::vector<std::string>{vswitch.team_interface()}
                            : vswitch.teamed_uplinks();
}

// The bonding driver's mode for the switch's teaming, and its transmit hash.
struct BondMode {
    std::string mode;
    std::string hash_policy;  // balance-xor only
    bool operator==(const BondMode&) const = default;
};

// IP hash is a static EtherChannel: balance-xor over the active uplinks, by
// MAC and IP addresses. Everything else a bond builds is a failover order
// (one active uplink with standby ones, or the explicit failover order).
BondMode bond_mode(const VirtualSwitch& vswitch) {
    if (vswitch.teaming.load_balancing == NicTeaming::LoadBalancing::IpHash) {
        return {"balance-xor", "layer2+3"};
    }
    return {"active-backup", ""};
}

BondMode applied_bond_mode(const json& link) {
    const json& info = link_info(link, "info_data");
    std::string mode = info.value("mode", "");
    return {mode, mode == "balance-xor" ? info.value("xmit_hash_policy", "") : ""};
}

std::string_view primary_reselect(const VirtualSwitch& vswitch) {
    return vswitch.teaming.failback ? "always" : "failure";
}

// The switch's teamed uplinks as members of its team, in failover order:
// the first is the bond's primary, and each has a higher priority than the
// next (the bonding driver's choice when the one in use loses its link).
void apply_team(const NetworkConfig& config, const VirtualSwitch& vswitch, const json& links) {
    std::string team = vswitch.team_interface();
    BondMode wanted = bond_mode(vswitch);
    const json* link = find_link(links, team);
    if (link != nullptr && applied_bond_mode(*link) != wanted) {
        run({"ip", "link", "del", "dev", team});  // a bond changes mode only when empty
        link = nullptr;
    }
    if (link == nullptr) {
        std::vector<std::string> argv = {"ip",   "link", "add",       "name",   team, "type",
                                         "bond", "mode", wanted.mode, "miimon", "100"};
        if (!wanted.hash_policy.empty()) {
            argv.insert(argv.end(), {"xmit_hash_policy", wanted.hash_policy});
        }
        run(argv);
    }
    std::vector<std::string> teamed = vswitch.teamed_uplinks();
    for (const json& member : links) {
        std::string name = member.value("ifname", "");
        if (link != nullptr && member.value("master", "") == team && !contains(teamed, name)) {
            run({"ip", "link", "set", "dev", name, "nomaster"});
        }
    }
    for (size_t i = 0; i < teamed.size(); ++i) {
        const json* uplink = find_link(links, teamed[i]);
        if (link == nullptr || uplink == nullptr || uplink->value("master", "") != team) {
            run({"ip", "link", "set", "dev", teamed[i], "down"});  // a bond takes members down
            run({"ip", "link", "set", "dev", teamed[i], "master", team});
        }
        if (wanted.mode == "active-backup") {
            run({"ip", "link", "set", "dev", teamed[i], "type", "bond_slave", "prio",
                 std::to_string(teamed.size() - i)});
        }
        run({"ip", "link", "set", "dev", teamed[i], "up"});
    }
    if (wanted.mode == "active-backup") {
        run({"ip", "link", "set", "dev", team, "type", "bond", "primary", teamed.front(),
             "primary_reselect", std::string(primary_reselect(vswitch))});
    }
    run({"ip", "link", "set", "dev", team, "master", vswitch.name, "mtu",
         std::to_string(vswitch.mtu), "alias", std::string(SwitchDatapath::kTeamAlias), "up"});
    set_port_vlans(team, uplink_port_vlans(config, vswitch.name));
}

// The switch's uplinks as ports of its bridge: one team, one uplink (and no
// team), or each teamed uplink, steered.
void apply_uplinks(const NetworkConfig& config, const VirtualSwitch& vswitch, const json& links) {
    if (vswitch.bonded()) {
        apply_team(config, vswitch, links);
        return;
    }
    const json* team = find_link(links, vswitch.team_interface());
    if (team != nullptr && team->value("ifalias", "") == SwitchDatapath::kTeamAlias) {
        run({"ip", "link", "del", "dev", vswitch.team_interface()});
    }
    // Steered uplinks neither learn (a MAC outside is behind all of them)
    // nor pass frames to one another.
    bool steered = vswitch.steered();
    for (const std::string& uplink : vswitch.teamed_uplinks()) {
        run({"ip", "link", "set", "dev", uplink, "master", vswitch.name, "mtu",
             std::to_string(vswitch.mtu), "up"});
        run({"bridge", "link", "set", "dev", uplink, "learning", steered ? "off" : "on", "isolated",
             steered ? "on" : "off"});
        set_port_vlans(uplink, uplink_port_vlans(config, vswitch.name));
    }
    if (!steered) {
        remove_steering_table(vswitch.name);
    }
}

// The ports of the switch that are neither its uplink (or team) nor a VM's
// port any more (a removed or unused uplink, a port group that is gone)
// leave it.
void apply_ports(const NetworkConfig& config, const VirtualSwitch& vswitch, const json& links) {
    std::vector<std::string> uplinks = bridge_uplinks(vswitch);
    for (const json& link : links) {
        if (link.value("master", "") != vswitch.name) {
            continue;
        }
        std::string name = link.value("ifname", "");
        if (contains(uplinks, name)) {
            continue;
        }
        std::optional<std::string> portgroup_name = portgroup_of(link);
        const PortGroup* portgroup =
            portgroup_name ? config.find_portgroup(*portgroup_name) : nullptr;
        if (portgroup != nullptr && portgroup->vswitch == vswitch.name) {
            run({"ip", "link", "set", "dev", name, "mtu", std::to_string(vswitch.mtu)});
            set_port_vlans(name, portgroup_port_vlans(config, *portgroup));
            set_port_shaping(name, config.shaping_of(*portgroup));
        } else {
            run({"ip", "link", "set", "dev", name, "nomaster"});
        }
    }
}

// `interface` as a port of `portgroup`: on its switch, at its MTU, with its
// VLANs and shaping, up.
void plug_port(const NetworkConfig& config, const PortGroup& portgroup,
               const std::string& interface) {
    const VirtualSwitch* vswitch = config.find_switch(portgroup.vswitch);
    run({"ip", "link", "set", "dev", interface, "master", vswitch->name, "mtu",
         std::to_string(vswitch->mtu), "alias",
         std::string(SwitchDatapath::kPortAliasPrefix) + portgroup.name});
    set_port_vlans(interface, portgroup_port_vlans(config, portgroup));
    set_port_shaping(interface, config.shaping_of(portgroup));
    run({"ip", "link", "set", "dev", interface, "up"});
}

// The host port's own addresses (not the kernel's link-local ones) become
// exactly the configured one.
void apply_address(const HostPort& hostport) {
    std::vector<std::string> argv = {"ip", "-json", "addr", "show", "dev", hostport.name};
    bool present = false;
    for (const json& link : query(argv)) {
        for (const json& address : link.value("addr_info", json::array())) {
            if (address.value("scope", "") == "link") {
                continue;
            }
            std::string cidr =
                fmt::format("{}/{}", address.value("local", ""), address.value("prefixlen", 0));
            if (cidr == hostport.address) {
                present = true;
            } else {
                run({"ip", "addr", "del", cidr, "dev", hostport.name});
            }
        }
    }
    if (!present && !hostport.address.empty()) {
        run({"ip", "addr", "add", hostport.address, "dev", hostport.name});
    }
}

void apply_hostport(const NetworkConfig& config, const HostPort& hostport, const json& links) {
    if (find_link(links, hostport.name) == nullptr) {
        run({"ip", "link", "add", "name", hostport.name, "type", "veth", "peer", "name",
             hostport.switch_side()});
    }
    const PortGroup* portgroup = config.find_portgroup(hostport.portgroup);
    const VirtualSwitch* vswitch = config.find_switch(portgroup->vswitch);
    run({"ip", "link", "set", "dev", hostport.name, "mtu", std::to_string(vswitch->mtu), "alias",
         std::string(SwitchDatapath::kHostPortAlias), "up"});
    apply_address(hostport);
    plug_port(config, *portgroup, hostport.switch_side());
}

SwitchPort::Counters counters(const json& link, const char* direction) {
    SwitchPort::Counters found;
    if (link.contains("stats64") && link["stats64"].contains(direction)) {
        const json& stats = link["stats64"][direction];
        found.packets = stats.value("packets", uint64_t{0});
        found.bytes = stats.value("bytes", uint64_t{0});
        found.dropped = stats.value("dropped", uint64_t{0});
        found.errors = stats.value("errors", uint64_t{0});
    }
    return found;
}

}  // namespace

std::string PortVlans::describe() const {
    if (untagged_by_vid.empty()) {
        return "none";
    }
    // Runs of VIDs with the same role, in VID order.
    std::vector<std::string> parts;
    std::vector<uint16_t> run_vids;
    std::string run_role;
    auto flush = [&] {
        for (auto range : ranges(run_vids)) {
            parts.push_back(range_text(range) + " " + run_role);
        }
        run_vids.clear();
    };
    for (const auto& [vid, untagged] : untagged_by_vid) {
        std::string role =
            std::string(untagged ? "untagged" : "tagged") + (vid == pvid ? " pvid" : "");
        if (role != run_role || (!run_vids.empty() && run_vids.back() + 1 != vid)) {
            flush();
            run_role = role;
        }
        run_vids.push_back(vid);
    }
    flush();
    std::string text;
    for (const std::string& part : parts) {
        text += (text.empty() ? "" : ", ") + part;
    }
    return text;
}

PortVlans portgroup_port_vlans(const NetworkConfig& config, const PortGroup& portgroup) {
    uint16_t native = config.native_vlan(portgroup.vswitch);
    PortVlans vlans;
    if (portgroup.vlan == PortGroup::kTrunk) {
        for (uint16_t vid = 1; vid <= PortGroup::kMaxVlan; ++vid) {
            vlans.untagged_by_vid[vid] = false;
        }
    }
    uint16_t own = portgroup.vlan == PortGroup::kNoVlan || portgroup.vlan == PortGroup::kTrunk
                       ? native
                       : portgroup.vlan;
    vlans.untagged_by_vid[own] = true;
    vlans.pvid = own;
    return vlans;
}

PortVlans uplink_port_vlans(const NetworkConfig& config, std::string_view switch_name) {
    PortVlans vlans;
    for (uint16_t vid = 1; vid <= PortGroup::kMaxVlan; ++vid) {
        vlans.untagged_by_vid[vid] = false;
    }
    uint16_t native = config.native_vlan(switch_name);
    vlans.untagged_by_vid[native] = true;
    vlans.pvid = native;
    return vlans;
}

void SwitchDatapath::check_applicable(const NetworkConfig& config) {
    json links = all_links();
    for (const HostPort& hostport : config.hostports) {
        const json* link = find_link(links, hostport.name);
        if (link != nullptr && link->value("ifalias", "") != kHostPortAlias) {
            fail(
                "host port {}: this host has an interface {} already that is not a Vireo host "
                "port; name the host port otherwise",
                hostport.name, hostport.name);
        }
    }
    for (const VirtualSwitch& vswitch : config.switches) {
        const json* link = find_link(links, vswitch.name);
        if (link != nullptr && !is_our_switch(*link)) {
            fail(
                "switch {}: this host has an interface {} already (kind '{}') that is not a "
                "Vireo switch; name the switch otherwise",
                vswitch.name, vswitch.name, kind_of(*link).empty() ? "none" : kind_of(*link));
        }
        const json* team = vswitch.bonded() ? find_link(links, vswitch.team_interface()) : nullptr;
        if (team != nullptr && team->value("ifalias", "") != kTeamAlias) {
            fail(
                "switch {}: this host has an interface {} already that is not a Vireo team; its "
                "teamed uplinks need that name",
                vswitch.name, vswitch.team_interface());
        }
        for (const std::string& uplink : vswitch.uplinks) {
            const json* port = find_link(links, uplink);
            if (port == nullptr) {
                fail("switch {}: uplink {}: no such interface on this host", vswitch.name, uplink);
            }
            std::string master = port->value("master", "");
            if (!master.empty() && master != vswitch.name && master != vswitch.team_interface()) {
                fail("switch {}: uplink {} is a port of {} already; take it out of there first",
                     vswitch.name, uplink, master);
            }
        }
    }
}

void SwitchDatapath::apply(const NetworkConfig& config) {
    check_applicable(config);
    for (const VirtualSwitch& vswitch : config.switches) {
        json links = all_links();
        apply_bridge(config, vswitch, find_link(links, vswitch.name));
        apply_uplinks(config, vswitch, links);
        apply_ports(config, vswitch, all_links());
    }
    json links = all_links();
    for (const HostPort& hostport : config.hostports) {
        apply_hostport(config, hostport, links);
    }
    // What config no longer has: host ports first (deleting one end of a
    // veth pair deletes both), then teams, then bridges.
    for (const json& link : links) {
        std::string name = link.value("ifname", "");
        if (link.value("ifalias", "") == kHostPortAlias && config.find_hostport(name) == nullptr) {
            run({"ip", "link", "del", "dev", name});
        }
    }
    for (const json& link : links) {
        std::string name = link.value("ifname", "");
        bool still_a_team = std::any_of(
            config.switches.begin(), config.switches.end(),
            [&](const VirtualSwitch& s) { return s.bonded() && s.team_interface() == name; });
        if (link.value("ifalias", "") == kTeamAlias && !still_a_team) {
            run({"ip", "link", "del", "dev", name});
        }
    }
    for (const json& link : links) {
        std::string name = link.value("ifname", "");
        if (is_our_switch(link) && config.find_switch(name) == nullptr) {
            run({"ip", "link", "del", "dev", name});
        }
    }
}

void SwitchDatapath::plug(const NetworkConfig& config, const PortGroup& portgroup,
                          const std::string& interface) {
    const VirtualSwitch* vswitch = config.find_switch(portgroup.vswitch);
    if (vswitch == nullptr) {
        fail("port group {}: no switch '{}'", portgroup.name, portgroup.vswitch);
    }
    json links = all_links();
    const json* bridge = find_link(links, vswitch->name);
    if (bridge == nullptr || !is_our_switch(*bridge)) {
        fail(
            "port group {}: switch {} is configured but not applied on this host (run `vireo "
            "switch apply`)",
            portgroup.name, vswitch->name);
    }
    plug_port(config, portgroup, interface);
}

std::vector<std::string> SwitchDatapath::portgroup_ports(std::string_view portgroup) {
    std::vector<std::string> ports;
    for (const json& link : all_links()) {
        if (portgroup_of(link) == portgroup) {
            ports.push_back(link.value("ifname", ""));
        }
    }
    std::sort(ports.begin(), ports.end());
    return ports;
}

AppliedSwitch SwitchDatapath::observe(const VirtualSwitch& vswitch) {
    AppliedSwitch applied;
    json links = all_links();
    const json* bridge = find_link(links, vswitch.name);
    if (bridge == nullptr) {
        return applied;
    }
    applied.exists = true;
    applied.ours = is_our_switch(*bridge);
    applied.up = is_up(*bridge);
    applied.mtu = bridge->value("mtu", 0u);
    if (bridge->contains("linkinfo") && (*bridge)["linkinfo"].contains("info_data")) {
        const json& info = (*bridge)["linkinfo"]["info_data"];
        applied.vlan_filtering = info.value("vlan_filtering", 0) == 1;
        applied.floods_all = info.value("ageing_time", 1) == 0;
    }
    std::string team = vswitch.team_interface();
    for (const json& link : links) {
        std::string master = link.value("master", "");
        if (master != vswitch.name && master != team) {
            continue;
        }
        SwitchPort port;
        port.name = link.value("ifname", "");
        if (master == team) {
            port.kind = SwitchPort::Kind::Uplink;
            port.team = team;
        } else if (link.value("ifalias", "") == kTeamAlias) {
            port.kind = SwitchPort::Kind::Team;
            const json& info = link_info(link, "info_data");
            BondMode mode = applied_bond_mode(link);
            applied.team =
                AppliedTeam{mode.mode, mode.hash_policy, info.value("primary", ""),
                            info.value("primary_reselect", ""), info.value("active_slave", "")};
        } else if (contains(vswitch.uplinks, port.name)) {
            port.kind = SwitchPort::Kind::Uplink;
        } else if (std::optional<std::string> portgroup = portgroup_of(link)) {
            port.kind = SwitchPort::Kind::PortGroup;
            port.portgroup = *portgroup;
        }
        port.up = is_up(link);
        port.link = has_carrier(link);
        const json& bridge_port = link_info(link, "info_slave_data");
        port.learning = bridge_port.value("learning", true);
        port.isolated = bridge_port.value("isolated", false);
        port.mtu = link.value("mtu", 0u);
        if (port.team.empty()) {
            port.vlans = read_port_vlans(port.name);
            port.shaping = read_port_shaping(port.name, port.shaped_away);
        }
        port.received = counters(link, "rx");
        port.sent = counters(link, "tx");
        applied.ports.push_back(std::move(port));
    }
    return applied;
}

namespace {

// Where the switch's team (or its absence) differs from its teaming.
void team_differences(const VirtualSwitch& vswitch, const AppliedSwitch& applied,
                      std::vector<std::string>& found) {
    std::string team = vswitch.team_interface();
    if (!vswitch.bonded()) {
        if (applied.team) {
            found.push_back(
                fmt::format("team {} exists, configured at most one teamed uplink", team));
        }
        return;
    }
    if (!applied.team) {
        found.push_back(fmt::format("team {} of uplinks {} is not a port of {}", team,
                                    fmt::join(vswitch.teamed_uplinks(), ", "), vswitch.name));
        return;
    }
    BondMode wanted = bond_mode(vswitch);
    BondMode mode{applied.team->mode, applied.team->hash_policy};
    if (mode != wanted) {
        found.push_back(fmt::format("team {}: mode {} {}, configured {} {}", team, mode.mode,
                                    mode.hash_policy, wanted.mode, wanted.hash_policy));
    }
    std::vector<std::string> teamed = vswitch.teamed_uplinks();
    if (wanted.mode == "active-backup" &&
        (applied.team->primary != teamed.front() ||
         applied.team->primary_reselect != primary_reselect(vswitch))) {
        found.push_back(
            fmt::format("team {}: first choice {} (reselect {}), configured {} (reselect {})", team,
                        applied.team->primary.empty() ? "none" : applied.team->primary,
                        applied.team->primary_reselect, teamed.front(), primary_reselect(vswitch)));
    }
    for (const std::string& uplink : teamed) {
        bool member =
            std::any_of(applied.ports.begin(), applied.ports.end(),
                        [&](const SwitchPort& p) { return p.name == uplink && p.team == team; });
        if (!member) {
            found.push_back(fmt::format("uplink {} is not in team {}", uplink, team));
        }
    }
}

}  // namespace

std::vector<std::string> SwitchDatapath::differences(const NetworkConfig& config,
                                                     const VirtualSwitch& vswitch,
                                                     const AppliedSwitch& applied) {
    std::vector<std::string> found;
    if (!applied.exists) {
        return {fmt::format("no bridge {} on this host", vswitch.name)};
    }
    if (!applied.ours) {
        return {fmt::format("{} is an interface Vireo did not make", vswitch.name)};
    }
    if (!applied.vlan_filtering) {
        found.push_back(fmt::format("bridge {} does not filter VLANs", vswitch.name));
    }
    if (!applied.up) {
        found.push_back(fmt::format("bridge {} is down", vswitch.name));
    }
    if (applied.floods_all != config.any_promiscuous(vswitch.name)) {
        found.push_back(
            fmt::format("bridge {} {} every frame, configured {}", vswitch.name,
                        applied.floods_all ? "floods" : "does not flood",
                        applied.floods_all ? "not to" : "to (a promiscuous port group)"));
    }
    if (applied.mtu != vswitch.mtu) {
        found.push_back(fmt::format("bridge {}: MTU {}, configured {}", vswitch.name, applied.mtu,
                                    vswitch.mtu));
    }
    team_differences(vswitch, applied, found);
    std::vector<std::string> uplinks = bridge_uplinks(vswitch);
    for (const std::string& uplink : uplinks) {
        auto port =
            std::find_if(applied.ports.begin(), applied.ports.end(),
                         [&](const SwitchPort& p) { return p.name == uplink && p.team.empty(); });
        if (port == applied.ports.end()) {
            if (!vswitch.bonded()) {
                found.push_back(fmt::format("uplink {} is not a port of {}", uplink, vswitch.name));
            }
            continue;
        }
        PortVlans wanted = uplink_port_vlans(config, vswitch.name);
        if (port->vlans != wanted) {
            found.push_back(fmt::format("uplink {}: VLANs {}, configured {}", uplink,
                                        port->vlans.describe(), wanted.describe()));
        }
        if (port->isolated != vswitch.steered() || port->learning == vswitch.steered()) {
            found.push_back(fmt::format(
                "uplink {}: {}learning, {}isolated; steered uplinks do not learn and are "
                "isolated, others learn and are not",
                uplink, port->learning ? "" : "not ", port->isolated ? "" : "not "));
        }
    }
    for (const SwitchPort& port : applied.ports) {
        if (port.kind == SwitchPort::Kind::Other) {
            found.push_back(fmt::format("port {} is neither an uplink nor a VM's port", port.name));
        }
        if (port.kind == SwitchPort::Kind::Uplink &&
            !contains(vswitch.teamed_uplinks(), port.name)) {
            found.push_back(
                fmt::format("uplink {} carries traffic, configured {}", port.name,
                            contains(vswitch.uplinks, port.name) ? "unused" : "no uplink"));
        }
        if (port.kind != SwitchPort::Kind::PortGroup) {
            continue;
        }
        const PortGroup* portgroup = config.find_portgroup(port.portgroup);
        if (portgroup == nullptr || portgroup->vswitch != vswitch.name) {
            found.push_back(fmt::format("port {}: its port group {} is not on this switch",
                                        port.name, port.portgroup));
            continue;
        }
        PortVlans wanted = portgroup_port_vlans(config, *portgroup);
        if (port.vlans != wanted) {
            found.push_back(fmt::format("port {} ({}): VLANs {}, configured {}", port.name,
                                        port.portgroup, port.vlans.describe(), wanted.describe()));
        }
        TrafficShaping shaping = config.shaping_of(*portgroup);
        if (!same_shaping(port.shaping, shaping)) {
            found.push_back(fmt::format("port {} ({}): shaping {}, configured {}", port.name,
                                        port.portgroup, port.shaping.describe(),
                                        shaping.describe()));
        }
    }
    return found;
}

}  // namespace vireo
