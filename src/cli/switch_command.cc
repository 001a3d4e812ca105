#include "cli/switch_command.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <iostream>
#include <memory>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "cli/api_client.h"
#include "cli/help_text.h"
#include "cli/option_lists.h"
#include "host/network_registry.h"
#include "host/network_report.h"
#include "host/steering_keepers.h"
#include "net/switch_steering.h"

namespace vireo::cli {

namespace {

using nlohmann::json;

struct SwitchOptions {
    ApiTarget target;  // vireod, which keeps and applies the configuration
    std::string name;
    std::string vswitch;  // portgroup create/list: the switch
    std::string uplink;
    std::vector<std::string> uplinks;
    uint32_t mtu = VirtualSwitch::kDefaultMtu;
    std::optional<uint16_t> vlan;
    std::string portgroup;  // hostport create
    std::string address;
    std::string shaping;   // --shaping SPEC; empty: not given
    std::string security;  // --security SPEC; empty: not given
    // Teaming; empty: not given. The lists are comma-separated, or "none".
    std::string load_balancing;
    std::string active;
    std::string standby;
    std::string unused;
    std::string failback;         // yes or no
    std::string notify_switches;  // yes or no
    bool as_standby = false;      // uplink add
    bool as_unused = false;       // uplink add
    bool json = false;
};

// --shaping off | inherit | average=KBPS[,peak=KBPS][,burst=KIB]; nullopt:
// inherit (the switch's), which only a port group may ask for.
std::optional<TrafficShaping> parse_shaping(const std::string& spec, bool may_inherit) {
    if (spec == "inherit" && may_inherit) {
        return std::nullopt;
    }
    TrafficShaping shaping;
    if (spec == "off") {
        return shaping;
    }
    shaping.enabled = true;
    bool peak_given = false;
    for (const std::string& part : split_commas(spec)) {
        auto [key, value] = split_key_value(part);
        bool number = !value.empty() && value.size() <= 12 &&
                      value.find_first_not_of("0123456789") == std::string::npos;
        uint64_t amount = number ? std::stoull(value) : 0;
        if (!number || amount == 0 || (key != "average" && key != "peak" && key != "burst")) {
            fail(
                "--shaping {}: '{}' is not average=KBPS, peak=KBPS or burst=KIB (whole numbers "
                "above 0); or give off{}",
                spec, part, may_inherit ? " or inherit" : "");
        }
        (key == "average" ? shaping.average_kbps
         : key == "peak"  ? shaping.peak_kbps
                          : shaping.burst_kib) = amount;
        peak_given = peak_given || key == "peak";
    }
    if (!peak_given) {
        shaping.peak_kbps = std::max(shaping.average_kbps, TrafficShaping::kDefaultPeakKbps);
    }
    return shaping;
}

// --security promiscuous=accept|reject,mac-changes=...,forged-transmits=...
// changes the fields it names in `into`; a port group may also say
// FIELD=inherit (the switch's), or inherit for all of them.
void change_security(const std::string& spec, SecurityOverride& into, bool may_inherit) {
    if (spec == "inherit" && may_inherit) {
        into = {};
        return;
    }
    for (const std::string& part : split_commas(spec)) {
        auto [key, value] = split_key_value(part);
        std::optional<bool>* field = key == "promiscuous"        ? &into.promiscuous
                                     : key == "mac-changes"      ? &into.mac_changes
                                     : key == "forged-transmits" ? &into.forged_transmits
                                                                 : nullptr;
        bool known_value =
            value == "accept" || value == "reject" || (value == "inherit" && may_inherit);
        if (field == nullptr || !known_value) {
            fail(
                "--security {}: '{}' is not promiscuous=, mac-changes= or forged-transmits= "
                "with accept or reject{}",
                spec, part, may_inherit ? " (or inherit)" : "");
        }
        *field = value == "inherit" ? std::nullopt : std::optional<bool>(value == "accept");
    }
}

// --OPTION yes|no.
bool yes_or_no(std::string_view option, const std::string& value) {
    if (value != "yes" && value != "no") {
        fail("--{} {}: yes or no", option, value);
    }
    return value == "yes";
}

bool teaming_given(const SwitchOptions& options) {
    return !options.load_balancing.empty() || !options.active.empty() || !options.standby.empty() ||
           !options.unused.empty() || !options.failback.empty() || !options.notify_switches.empty();
}

// --load-balancing, --active, --standby, --unused, --failback,
// --notify-switches: the lists say
// which uplinks take that role (in that order); the others keep theirs.
void change_teaming(const SwitchOptions& options, VirtualSwitch& vswitch) {
    NicTeaming& teaming = vswitch.teaming;
    if (!options.load_balancing.empty()) {
        auto policy = load_balancing_named(options.load_balancing);
        if (!policy) {
            fail(
                "--load-balancing {}: not one of portid (by originating port, ESX's default), "
                "mac (source MAC hash), iphash (IP hash), explicit (explicit failover order)",
                options.load_balancing);
        }
        teaming.load_balancing = *policy;
    }
    auto uplinks_in = [&](const char* option, const std::string& spec) {
        std::vector<std::string> names =
            spec == "none" ? std::vector<std::string>{} : split_commas(spec);
        for (const std::string& name : names) {
            if (std::find(vswitch.uplinks.begin(), vswitch.uplinks.end(), name) ==
                vswitch.uplinks.end()) {
                fail("{} {}: {} is not an uplink of switch {} ({})", option, spec, name,
                     vswitch.name, fmt::join(vswitch.uplinks, ", "));
            }
        }
        return names;
    };
    auto take_out = [](std::vector<std::string>& from, const std::vector<std::string>& names) {
        std::erase_if(from, [&](const std::string& name) {
            return std::find(names.begin(), names.end(), name) != names.end();
        });
    };
    if (!options.active.empty()) {
        std::vector<std::string> active = uplinks_in("--active", options.active);
        take_out(teaming.standby, active);
        take_out(teaming.unused, active);
        // The active uplinks' order in `uplinks` is their failover order.
        std::vector<std::string> rest = vswitch.uplinks;
        take_out(rest, active);
        vswitch.uplinks = active;
        vswitch.uplinks.insert(vswitch.uplinks.end(), rest.begin(), rest.end());
    }
    if (!options.standby.empty()) {
        teaming.standby = uplinks_in("--standby", options.standby);
        take_out(teaming.unused, teaming.standby);
    }
    if (!options.unused.empty()) {
        teaming.unused = uplinks_in("--unused", options.unused);
        take_out(teaming.standby, teaming.unused);
    }
    if (!options.failback.empty()) {
        teaming.failback = yes_or_no("failback", options.failback);
    }
    if (!options.notify_switches.empty()) {
        teaming.notify_switches = yes_or_no("notify-switches", options.notify_switches);
    }
}

// The host's network configuration, as vireod keeps it.
NetworkConfig read_network(const ApiTarget& target) {
    json answer = ApiClient(target).call("GET", "/v1/network");
    return NetworkConfig::from_json(answer["configuration"], "vireod's answer");
}

// Reads the configuration, lets `change` edit it (it throws to refuse), and
// has vireod replace it, applied at once; from the start again when another
// change came first. Returns what vireod stored.
NetworkConfig update_network(const ApiTarget& target,
                             const std::function<void(NetworkConfig&)>& change) {
    constexpr int kAttempts = 20;
    ApiClient api(target);
    for (int attempt = 1;; ++attempt) {
        json current = api.call("GET", "/v1/network");
        NetworkConfig config =
            NetworkConfig::from_json(current["configuration"], "vireod's answer");
        change(config);
        json body = {{"revision", current["revision"]}, {"configuration", config.to_json()}};
        try {
            json answer = api.call("PUT", "/v1/network", &body);
            return NetworkConfig::from_json(answer["configuration"], "vireod's answer");
        } catch (const Error& error) {
            if (attempt == kAttempts || std::string_view(error.what()).find("changed meanwhile") ==
                                            std::string_view::npos) {
                throw;
            }
        }
    }
}

// A switch as vireod reports it (network_report.h); its ports only if asked.
json switch_entry(const ApiTarget& target, const std::string& name, bool with_ports) {
    json entry = ApiClient(target).call("GET", "/v1/switches/" + name);
    if (!with_ports) {
        entry.erase("ports");
    }
    return entry;
}

// A port group as vireod reports it.
json portgroup_entry(const ApiTarget& target, const std::string& name) {
    json answer = ApiClient(target).call("GET", "/v1/portgroups");
    for (json& entry : answer["portgroups"]) {
        if (entry["name"] == name) {
            return entry;
        }
    }
    fail("port group {}: vireod does not report it", name);
}

std::string vlan_text(uint16_t vlan) {
    if (vlan == PortGroup::kNoVlan) {
        return "none (0)";
    }
    return vlan == PortGroup::kTrunk ? "trunk (4095)" : std::to_string(vlan);
}

std::string joined(const std::vector<std::string>& names) {
    std::string text;
    for (const std::string& name : names) {
        text += (text.empty() ? "" : ", ") + name;
    }
    return text.empty() ? "-" : text;
}

const VirtualSwitch& existing_switch(const NetworkConfig& config, const std::string& name) {
    const VirtualSwitch* vswitch = config.find_switch(name);
    if (vswitch == nullptr) {
        fail("switch {}: no such switch (vireo switch list shows them)", name);
    }
    return *vswitch;
}

PortGroup& existing_portgroup(NetworkConfig& config, const std::string& name) {
    PortGroup* portgroup = config.find_portgroup(name);
    if (portgroup == nullptr) {
        fail("port group {}: no such port group (vireo portgroup list shows them)", name);
    }
    return *portgroup;
}

// A port group with host ports cannot go (vireod refuses those with VMs'
// ports; the configuration itself refuses a host port on no port group).
void refuse_host_ports(const NetworkConfig& config, const PortGroup& portgroup) {
    std::vector<std::string> ports;
    for (const HostPort& hostport : config.hostports) {
        if (hostport.portgroup == portgroup.name) {
            ports.push_back(hostport.switch_side());
        }
    }
    if (!ports.empty()) {
        fail(
            "port group {} has ports in use ({}): stop those VMs and delete those host ports "
            "first",
            portgroup.name, joined(ports));
    }
}

void print_switch(const json& entry) {
    std::cout << fmt::format("switch {}: MTU {}, uplinks {}, {}\n",
                             entry["name"].get<std::string>(), entry["mtu"].get<uint32_t>(),
                             joined(entry["uplinks"].get<std::vector<std::string>>()),
                             entry["applied"].get<bool>() ? "applied" : "NOT applied");
    const json& teaming = entry["teaming"];
    if (teaming["active"].size() + teaming["standby"].size() > 1) {
        std::cout << fmt::format(
            "  teaming: load balancing {}, active {}, standby {}, unused {}, failback {}, "
            "notify switches {}\n",
            teaming["load_balancing"].get<std::string>(),
            joined(teaming["active"].get<std::vector<std::string>>()),
            joined(teaming["standby"].get<std::vector<std::string>>()),
            joined(teaming["unused"].get<std::vector<std::string>>()),
            teaming["failback"].get<bool>() ? "yes" : "no",
            teaming["notify_switches"].get<bool>() ? "yes" : "no");
    }
    if (const json& team = teaming["team"]; !team.is_null()) {
        std::string mode = team["mode"].get<std::string>();
        std::string carrying = team["carrying"].get<std::string>();
        std::cout << fmt::format("  team {}: {}{}\n", team["interface"].get<std::string>(), mode,
                                 carrying.empty()
                                     ? " (" + team["hash_policy"].get<std::string>() + ")"
                                     : ", carrying " + carrying);
    }
    if (const json& steering = teaming["steering"]; !steering.is_null()) {
        std::cout << fmt::format(
            "  steering: {}, ports {}\n",
            steering["keeper"].is_null()
                ? std::string("NO keeper")
                : fmt::format("keeper pid {}", steering["keeper"].get<int>()),
            describe_pins(steering["pins"].get<std::map<std::string, std::string>>()));
    }
    for (const json& difference : entry["differences"]) {
        std::cout << "  differs: " << difference.get<std::string>() << "\n";
    }
}

int print(const json& entry, bool as_json, const std::string& text) {
    if (as_json) {
        std::cout << entry.dump() << std::endl;
    } else {
        std::cout << text;
    }
    return 0;
}

int create_switch(const SwitchOptions& options) {
    update_network(options.target, [&](NetworkConfig& c) {
        if (c.find_switch(options.name) != nullptr) {
            fail("switch create {}: a switch of that name exists already", options.name);
        }
        VirtualSwitch created{options.name, options.mtu, options.uplinks, {}, {}, {}};
        change_teaming(options, created);
        if (!options.shaping.empty()) {
            created.shaping = *parse_shaping(options.shaping, false);
        }
        if (!options.security.empty()) {
            SecurityOverride given;
            change_security(options.security, given, false);
            created.security = given.applied_to(SecurityPolicy{});
        }
        c.switches.push_back(created);
    });
    json entry = switch_entry(options.target, options.name, false);
    return print(entry, options.json,
                 fmt::format("switch {} created: bridge {}, MTU {}, uplinks {}\n", options.name,
                             options.name, options.mtu, joined(options.uplinks)));
}

// A list command's result: {key: entries} as JSON, else `none` when there
// are no entries, else what print_table prints.
int print_list(const std::string& key, const json& entries, bool as_json, std::string_view none,
               const std::function<void()>& print_table) {
    if (as_json) {
        std::cout << json{{key, entries}}.dump() << std::endl;
    } else if (entries.empty()) {
        std::cout << none;
    } else {
        print_table();
    }
    return 0;
}

int print_deleted(const SwitchOptions& options, std::string_view kind) {
    return print(json{{"name", options.name}}, options.json,
                 fmt::format("{} {} deleted\n", kind, options.name));
}

int delete_switch(const SwitchOptions& options) {
    std::vector<std::string> removed_portgroups;
    update_network(options.target, [&](NetworkConfig& c) {
        existing_switch(c, options.name);
        removed_portgroups.clear();  // a second attempt starts afresh
        for (const PortGroup* portgroup : c.portgroups_of(options.name)) {
            refuse_host_ports(c, *portgroup);
            removed_portgroups.push_back(portgroup->name);
        }
        std::erase_if(c.portgroups, [&](const PortGroup& p) { return p.vswitch == options.name; });
        std::erase_if(c.switches, [&](const VirtualSwitch& s) { return s.name == options.name; });
    });
    json entry = {{"name", options.name}, {"portgroups", removed_portgroups}};
    return print(entry, options.json,
                 fmt::format("switch {} deleted, with its port groups: {}\n", options.name,
                             joined(removed_portgroups)));
}

int list_switches(const SwitchOptions& options) {
    json entries = ApiClient(options.target).call("GET", "/v1/switches")["switches"];
    return print_list("switches", entries, options.json,
                      "no switches (create one: vireo switch create vSwitch0 --uplink IF)\n", [&] {
                          for (const json& entry : entries) {
                              print_switch(entry);
                          }
                      });
}

int show_switch(const SwitchOptions& options, bool counters) {
    NetworkConfig config = read_network(options.target);
    json entry = switch_entry(options.target, options.name, true);
    if (options.json) {
        std::cout << entry.dump() << std::endl;
        return 0;
    }
    if (!counters) {
        print_switch(entry);
        for (const std::string& name : entry["portgroups"].get<std::vector<std::string>>()) {
            const PortGroup* portgroup = config.find_portgroup(name);
            std::cout << fmt::format("  port group {}: VLAN {}, shaping {}{}\n", name,
                                     vlan_text(portgroup->vlan),
                                     config.shaping_of(*portgroup).describe(),
                                     portgroup->shaping ? "" : " (the switch's)");
        }
    }
    std::cout << fmt::format("  {:<16} {:<7} {:<16} {:>12} {:>12} {:>9} {:>9}\n", "PORT", "KIND",
                             "PORT GROUP", "RX PACKETS", "TX PACKETS", "RX DROPS", "TX DROPS");
    for (const json& port : entry["ports"]) {
        std::cout << fmt::format(
            "  {:<16} {:<7} {:<16} {:>12} {:>12} {:>9} {:>9}\n", port["name"].get<std::string>(),
            port["kind"].get<std::string>(), port["portgroup"].get<std::string>(),
            port["received"]["packets"].get<uint64_t>(), port["sent"]["packets"].get<uint64_t>(),
            port["received"]["dropped"].get<uint64_t>(), port["sent"]["dropped"].get<uint64_t>());
        if (counters) {
            continue;
        }
        if (std::string team = port["team"].get<std::string>(); !team.empty()) {
            std::cout << "    in team " << team << ", link "
                      << (port["link"].get<bool>() ? "up" : "down") << "\n";
        } else {
            std::cout << "    VLANs: " << port["vlans"].get<std::string>()
                      << "; shaping: " << port["shaping"].get<std::string>() << "\n";
        }
    }
    return 0;
}

int change_uplink(const SwitchOptions& options, bool add) {
    update_network(options.target, [&](NetworkConfig& c) {
        VirtualSwitch& vswitch = *c.find_switch(existing_switch(c, options.name).name);
        auto it = std::find(vswitch.uplinks.begin(), vswitch.uplinks.end(), options.uplink);
        if (add && it != vswitch.uplinks.end()) {
            fail("switch {}: {} is its uplink already", options.name, options.uplink);
        }
        if (!add && it == vswitch.uplinks.end()) {
            fail("switch {}: {} is not one of its uplinks ({})", options.name, options.uplink,
                 joined(vswitch.uplinks));
        }
        if (add) {
            vswitch.uplinks.push_back(options.uplink);
            if (options.as_standby) {
                vswitch.teaming.standby.push_back(options.uplink);
            } else if (options.as_unused) {
                vswitch.teaming.unused.push_back(options.uplink);
            }
        } else {
            vswitch.uplinks.erase(it);
            std::erase(vswitch.teaming.standby, options.uplink);
            std::erase(vswitch.teaming.unused, options.uplink);
        }
    });
    json entry = switch_entry(options.target, options.name, false);
    return print(entry, options.json,
                 fmt::format("switch {}: uplink {} {}\n", options.name, options.uplink,
                             add ? "added" : "removed"));
}

int set_teaming(const SwitchOptions& options) {
    update_network(options.target, [&](NetworkConfig& c) {
        existing_switch(c, options.name);
        if (teaming_given(options)) {
            change_teaming(options, *c.find_switch(options.name));
        }
    });
    json entry = switch_entry(options.target, options.name, false);
    if (options.json) {
        std::cout << entry["teaming"].dump() << std::endl;
    } else {
        print_switch(entry);
    }
    return 0;
}

int apply_all(const SwitchOptions& options) {
    json entries = ApiClient(options.target).call("POST", "/v1/network/apply")["switches"];
    NetworkConfig config = read_network(options.target);
    if (options.json) {
        std::cout << json{{"switches", entries}}.dump() << std::endl;
        return 0;
    }
    std::cout << fmt::format("applied {} switch(es) and {} port group(s)\n", config.switches.size(),
                             config.portgroups.size());
    for (const json& entry : entries) {
        print_switch(entry);
    }
    return 0;
}

std::atomic<bool> steering_stopped = false;

// `vireo switch steer NAME`: the keeper of a steered switch, started by the
// commands that apply the configuration; it runs until the switch goes.
int keep_switch_steering(const SwitchOptions& options) {
    SteeringKeepers keepers(StateFile::default_dir());
    std::optional<UniqueFd> lock = keepers.claim(options.name);
    if (!lock) {
        std::cout << fmt::format("switch {}: a keeper steers it already (pid {})\n", options.name,
                                 keepers.running(options.name).value_or(0));
        return 0;
    }
    struct sigaction stop = {};
    stop.sa_handler = [](int) { steering_stopped = true; };  // no SA_RESTART: poll wakes
    ::sigaction(SIGTERM, &stop, nullptr);
    ::sigaction(SIGINT, &stop, nullptr);
    spdlog::info("switch {}: steering its ports (pid {})", options.name, ::getpid());
    keep_steering(
        options.name, [] { return NetworkRegistry(StateFile::default_dir()).read(); },
        steering_stopped);
    return 0;
}

int create_portgroup(const SwitchOptions& options) {
    update_network(options.target, [&](NetworkConfig& c) {
        existing_switch(c, options.vswitch);
        if (c.find_portgroup(options.name) != nullptr) {
            fail("portgroup create {}: a port group of that name exists already", options.name);
        }
        PortGroup created{
            options.name, options.vswitch, options.vlan.value_or(0), std::nullopt, {}};
        if (!options.shaping.empty()) {
            created.shaping = parse_shaping(options.shaping, true);
        }
        if (!options.security.empty()) {
            change_security(options.security, created.security, true);
        }
        c.portgroups.push_back(created);
    });
    json created = portgroup_entry(options.target, options.name);
    return print(created, options.json,
                 fmt::format("port group {} created on switch {}, VLAN {}\n", options.name,
                             created["switch"].get<std::string>(),
                             vlan_text(created["vlan"].get<uint16_t>())));
}

int set_portgroup(const SwitchOptions& options) {
    if (!options.vlan && options.shaping.empty() && options.security.empty()) {
        fail("portgroup set {}: nothing to change (--vlan N, --shaping SPEC, --security SPEC)",
             options.name);
    }
    update_network(options.target, [&](NetworkConfig& c) {
        PortGroup& portgroup = existing_portgroup(c, options.name);
        portgroup.vlan = options.vlan.value_or(portgroup.vlan);
        if (!options.shaping.empty()) {
            portgroup.shaping = parse_shaping(options.shaping, true);
        }
        if (!options.security.empty()) {
            change_security(options.security, portgroup.security, true);
        }
    });
    // vireod gave the running VMs' vNICs the new security policy at once.
    json changed = portgroup_entry(options.target, options.name);
    return print(
        changed, options.json,
        fmt::format("port group {}: VLAN {}, shaping {}, security {}\n", options.name,
                    vlan_text(changed["vlan"].get<uint16_t>()),
                    changed["shaping"].get<std::string>(), changed["security"].get<std::string>()));
}

int delete_portgroup(const SwitchOptions& options) {
    update_network(options.target, [&](NetworkConfig& c) {
        refuse_host_ports(c, existing_portgroup(c, options.name));
        std::erase_if(c.portgroups, [&](const PortGroup& p) { return p.name == options.name; });
    });
    return print_deleted(options, "port group");
}

int list_portgroups(const SwitchOptions& options) {
    json entries = json::array();
    json answer = ApiClient(options.target).call("GET", "/v1/portgroups");
    for (json& entry : answer["portgroups"]) {
        if (options.vswitch.empty() || entry["switch"] == options.vswitch) {
            entries.push_back(std::move(entry));
        }
    }
    return print_list("portgroups", entries, options.json,
                      "no port groups (create one: vireo portgroup create NAME --switch S)\n", [&] {
                          std::cout << fmt::format("{:<24} {:<16} {:<14} {}\n", "PORT GROUP",
                                                   "SWITCH", "VLAN", "PORTS");
                          for (const json& entry : entries) {
                              std::cout << fmt::format(
                                  "{:<24} {:<16} {:<14} {}\n", entry["name"].get<std::string>(),
                                  entry["switch"].get<std::string>(),
                                  vlan_text(entry["vlan"].get<uint16_t>()),
                                  joined(entry["ports"].get<std::vector<std::string>>()));
                          }
                      });
}

int create_hostport(const SwitchOptions& options) {
    NetworkConfig config = update_network(options.target, [&](NetworkConfig& c) {
        if (c.find_hostport(options.name) != nullptr) {
            fail("hostport create {}: a host port of that name exists already", options.name);
        }
        existing_portgroup(c, options.portgroup);
        c.hostports.push_back({options.name, options.portgroup, options.address});
    });
    const HostPort& created = *config.find_hostport(options.name);
    return print(
        hostport_report(created), options.json,
        fmt::format("host port {} created on port group {}{}\n", created.name, created.portgroup,
                    created.address.empty() ? "" : ", address " + created.address));
}

int delete_hostport(const SwitchOptions& options) {
    update_network(options.target, [&](NetworkConfig& c) {
        if (c.find_hostport(options.name) == nullptr) {
            fail("hostport delete {}: no such host port", options.name);
        }
        std::erase_if(c.hostports, [&](const HostPort& h) { return h.name == options.name; });
    });
    return print_deleted(options, "host port");
}

int list_hostports(const SwitchOptions& options) {
    NetworkConfig config = read_network(options.target);
    json entries = json::array();
    for (const HostPort& hostport : config.hostports) {
        entries.push_back(hostport_report(hostport));
    }
    return print_list(
        "hostports", entries, options.json,
        "no host ports (create one: vireo hostport create vmk0 --portgroup PG)\n", [&] {
            std::cout << fmt::format("{:<13} {:<24} {}\n", "HOST PORT", "PORT GROUP", "ADDRESS");
            for (const HostPort& hostport : config.hostports) {
                std::cout << fmt::format("{:<13} {:<24} {}\n", hostport.name, hostport.portgroup,
                                         hostport.address.empty() ? "-" : hostport.address);
            }
        });
}

CLI::App* subcommand(CLI::App* parent, const char* name, const char* help,
                     std::shared_ptr<SwitchOptions> options, std::function<int()> run) {
    CLI::App* command = parent->add_subcommand(name, help);
    add_target_options(command, options->target);
    command->add_flag("--json", options->json, "print the result as JSON");
    command->final_callback([run] { throw CLI::RuntimeError(run()); });
    return command;
}

void add_shaping_option(CLI::App* command, SwitchOptions& options, bool may_inherit) {
    command
        ->add_option("--shaping", options.shaping,
                     std::string("traffic shaping of what its VMs send: off (the default), ") +
                         (may_inherit ? "inherit (the switch's), " : "") +
                         "or average=KBPS[,peak=KBPS][,burst=KIB] (ESX's defaults: "
                         "100000, 100000, 102400)")
        ->type_name("SPEC");
}

void add_security_option(CLI::App* command, SwitchOptions& options, bool may_inherit) {
    command
        ->add_option("--security", options.security,
                     std::string("security policy: promiscuous=, mac-changes=, "
                                 "forged-transmits= each accept or reject") +
                         (may_inherit ? " or inherit (the switch's)" : "") +
                         "; ESX's defaults: reject, accept, accept")
        ->type_name("SPEC");
}

void add_teaming_options(CLI::App* command, SwitchOptions& options) {
    command
        ->add_option("--load-balancing", options.load_balancing,
                     "how traffic spreads over the active uplinks: portid (by originating port, "
                     "the default), mac (source MAC hash), iphash (IP hash; the physical switch "
                     "bundles the ports as a static EtherChannel), explicit (the first active "
                     "uplink with a link)")
        ->type_name("POLICY");
    // Each list: comma-separated uplinks, or none.
    const std::tuple<const char*, std::string*, const char*> lists[] = {
        {"--active", &options.active, "these uplinks are active, in this failover order"},
        {"--standby", &options.standby,
         "these uplinks are standby, in this order: they take over when no active one has a "
         "link"},
        {"--unused", &options.unused, "these uplinks carry nothing"},
    };
    for (const auto& [name, field, help] : lists) {
        command->add_option(name, *field, std::string(help) + " (comma-separated, or none)")
            ->type_name("LIST");
    }
    command
        ->add_option("--failback", options.failback,
                     "yes (the default): an uplink whose link returns takes its place back")
        ->type_name("yes|no");
    command
        ->add_option("--notify-switches", options.notify_switches,
                     "yes (the default): after a failover, each VM announces its MACs (RARP) "
                     "out of the uplink that now carries it")
        ->type_name("yes|no");
}

void add_vlan_option(CLI::App* command, SwitchOptions& options) {
    command
        ->add_option("--vlan", options.vlan,
                     "0: untagged (default); 1-4094: tagged on the uplink, untagged to the "
                     "VMs; 4095: trunk, the VMs see the tags")
        ->check(whole_number(0, PortGroup::kTrunk, "VLAN ID"));
}

}  // namespace

void add_switch_commands(CLI::App& app) {
    // Shared with every callback: CLI11 writes into it while parsing.
    auto options = std::make_shared<SwitchOptions>();

    CLI::App* vswitch = app.add_subcommand(
        "switch",
        "Virtual switches (ESX standard switches): a Linux bridge each, with VLAN filtering.\n"
        "Kept by vireod (in $VIREO_STATE_DIR/network.json), applied at once.");
    vswitch->require_subcommand(1);
    CLI::App* create = subcommand(vswitch, "create", "Create a switch", options,
                                  [options] { return create_switch(*options); });
    create->add_option("NAME", options->name, "its name, also its bridge's (e.g. vSwitch0)")
        ->required();
    create->add_option("--mtu", options->mtu, "its MTU (default 1500)")
        ->check(whole_number(VirtualSwitch::kMinMtu, VirtualSwitch::kMaxMtu, "MTU"));
    create->add_option("--uplink", options->uplinks,
                       "a host interface joining the switch to the physical network");
    add_shaping_option(create, *options, false);
    add_security_option(create, *options, false);
    add_teaming_options(create, *options);
    CLI::App* remove = subcommand(vswitch, "delete", "Delete a switch and its port groups", options,
                                  [options] { return delete_switch(*options); });
    remove->add_option("NAME", options->name, "the switch")->required();
    subcommand(vswitch, "list", "List the switches and whether each is applied", options,
               [options] { return list_switches(*options); });
    CLI::App* show = subcommand(vswitch, "show",
                                "A switch: its port groups, its ports with their VLANs, and "
                                "where the kernel differs from the configuration",
                                options, [options] { return show_switch(*options, false); });
    show->add_option("NAME", options->name, "the switch")->required();
    CLI::App* stats = subcommand(vswitch, "stats", "A switch's counters, port by port", options,
                                 [options] { return show_switch(*options, true); });
    stats->add_option("NAME", options->name, "the switch")->required();
    subcommand(vswitch, "apply",
               "Make the kernel match the stored configuration again (at boot, after a failure)",
               options, [options] { return apply_all(*options); });
    CLI::App* steer = subcommand(
        vswitch, "steer",
        "Keep a switch's steering (load balancing by port or MAC over several active uplinks): "
        "started by the commands that apply the configuration, runs until the switch goes",
        options, [options] { return keep_switch_steering(*options); });
    steer->add_option("NAME", options->name, "the switch")->required();
    CLI::App* uplink = vswitch->add_subcommand("uplink", "Add or remove a switch's uplink");
    uplink->require_subcommand(1);
    for (bool add : {true, false}) {
        CLI::App* change =
            subcommand(uplink, add ? "add" : "remove", add ? "Add an uplink" : "Remove an uplink",
                       options, [options, add] { return change_uplink(*options, add); });
        change->add_option("NAME", options->name, "the switch")->required();
        change->add_option("INTERFACE", options->uplink, "the host interface")->required();
        if (add) {
            change->add_flag("--standby", options->as_standby,
                             "as a standby uplink (default: active)");
            change->add_flag("--unused", options->as_unused, "as an unused uplink")
                ->excludes("--standby");
        }
    }
    CLI::App* teaming = subcommand(
        vswitch, "teaming",
        "Show or change a switch's NIC teaming: load balancing, active, standby and unused "
        "uplinks, failback, notify switches",
        options, [options] { return set_teaming(*options); });
    teaming->add_option("NAME", options->name, "the switch")->required();
    add_teaming_options(teaming, *options);

    CLI::App* portgroup = app.add_subcommand(
        "portgroup",
        "Port groups: the ports of a switch that share a VLAN; VMs plug into them "
        "(vireo run --nic portgroup=NAME)");
    portgroup->require_subcommand(1);
    CLI::App* pg_create = subcommand(portgroup, "create", "Create a port group", options,
                                     [options] { return create_portgroup(*options); });
    pg_create->add_option("NAME", options->name, "its name: 1 to 64 of A-Z a-z 0-9 . _ -")
        ->required();
    pg_create->add_option("--switch", options->vswitch, "the switch it is on")->required();
    add_vlan_option(pg_create, *options);
    add_shaping_option(pg_create, *options, true);
    add_security_option(pg_create, *options, true);
    CLI::App* pg_set = subcommand(portgroup, "set", "Change a port group (its ports follow)",
                                  options, [options] { return set_portgroup(*options); });
    pg_set->add_option("NAME", options->name, "the port group")->required();
    add_vlan_option(pg_set, *options);
    add_shaping_option(pg_set, *options, true);
    add_security_option(pg_set, *options, true);
    CLI::App* pg_delete = subcommand(portgroup, "delete", "Delete a port group no VM uses", options,
                                     [options] { return delete_portgroup(*options); });
    pg_delete->add_option("NAME", options->name, "the port group")->required();
    CLI::App* pg_list = subcommand(portgroup, "list", "List the port groups and their ports",
                                   options, [options] { return list_portgroups(*options); });
    pg_list->add_option("--switch", options->vswitch, "only this switch's");

    CLI::App* hostport = app.add_subcommand(
        "hostport",
        "Host ports (ESX's VMkernel ports): an IP interface of this host on a port "
        "group, for its own traffic");
    hostport->require_subcommand(1);
    CLI::App* hp_create = subcommand(hostport, "create", "Create a host port", options,
                                     [options] { return create_hostport(*options); });
    hp_create->add_option("NAME", options->name, "the host interface's name (up to 12 characters)")
        ->required();
    hp_create->add_option("--portgroup", options->portgroup, "the port group it is on")->required();
    hp_create->add_option("--address", options->address, "its address, e.g. 10.0.0.2/24");
    CLI::App* hp_delete = subcommand(hostport, "delete", "Delete a host port", options,
                                     [options] { return delete_hostport(*options); });
    hp_delete->add_option("NAME", options->name, "the host port")->required();
    subcommand(hostport, "list", "List the host ports", options,
               [options] { return list_hostports(*options); });
}

}  // namespace vireo::cli
