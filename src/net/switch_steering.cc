#include "net/switch_steering.h"

#include <libmnl/libmnl.h>
#include <linux/if_packet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/unique_fd.h"
#include "net/nftables.h"

namespace vireo {

using nlohmann::json;

namespace {

constexpr std::string_view kTablePrefix = "vireo-steer-";
// IFF_LOWER_UP, the carrier (linux/if.h has it, but clashes with net/if.h).
constexpr unsigned kLowerUp = 1u << 16;
// The keeper re-plans at least this often, whatever it heard.
constexpr int kQuietReplanMs = 2000;
// Events come in bursts (a port joins: several messages): it waits this
// long after the first before it looks.
constexpr auto kSettle = std::chrono::milliseconds(20);
// Addresses alone (no pin moved) rewrite the table at most this often: a
// switch that forgets addresses at once (a promiscuous port group makes it
// a hub) learns and forgets them at every frame.
constexpr auto kAddressRewriteInterval = std::chrono::milliseconds(250);

bool contains(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

// The uplink of `candidates` with the fewest ports in `load` (the first of
// them on a tie).
std::string least_loaded(const std::vector<std::string>& candidates,
                         const std::map<std::string, std::string>& load) {
    std::string best;
    size_t best_count = SIZE_MAX;
    for (const std::string& uplink : candidates) {
        auto count = static_cast<size_t>(std::count_if(
            load.begin(), load.end(), [&](const auto& entry) { return entry.second == uplink; }));
        if (count < best_count) {
            best = uplink;
            best_count = count;
        }
    }
    return best;
}

// SteeringPlan::carrying.
std::vector<std::string> carrying_uplinks(const VirtualSwitch& vswitch, const SteeringView& view,
                                          const SteeringPlan& before) {
    std::vector<std::string> active = vswitch.active_uplinks();
    std::vector<std::string> carrying;
    auto usable = [&](const std::string& uplink) {
        return view.with_link.contains(uplink) && !contains(carrying, uplink) &&
               contains(vswitch.teamed_uplinks(), uplink);
    };
    if (!vswitch.teaming.failback) {
        for (const std::string& uplink : before.carrying) {
            if (usable(uplink)) {
                carrying.push_back(uplink);
            }
        }
    }
    for (const std::string& uplink : vswitch.teamed_uplinks()) {
        if (carrying.size() < active.size() && usable(uplink)) {
            carrying.push_back(uplink);
        }
    }
    // Failover order, whatever order they were found in.
    std::vector<std::string> ordered;
    for (const std::string& uplink : vswitch.teamed_uplinks()) {
        if (contains(carrying, uplink)) {
            ordered.push_back(uplink);
        }
    }
    return ordered;
}

std::string quoted_list(const std::vector<std::string>& names) {
    std::vector<std::string> quoted;
    for (const std::string& name : names) {
        quoted.push_back(fmt::format("\"{}\"", name));
    }
    return fmt::format("{}", fmt::join(quoted, ", "));
}

using NetlinkSocket = std::unique_ptr<mnl_socket, int (*)(mnl_socket*)>;

// Subscribed to `groups` (then non-blocking, for draining), or for dumps.
NetlinkSocket open_netlink(unsigned groups, const std::string& switch_name) {
    int flags = SOCK_CLOEXEC | (groups != 0 ? SOCK_NONBLOCK : 0);
    NetlinkSocket socket(mnl_socket_open2(NETLINK_ROUTE, flags), mnl_socket_close);
    if (!socket || mnl_socket_bind(socket.get(), groups, MNL_SOCKET_AUTOPID) < 0) {
        fail_errno("switch {}: cannot open a netlink socket", switch_name);
    }
    return socket;
}

// Sends the dump request `type` with `header` (and a u32 attribute, when
// `attribute` is non-zero) and hands each answer to `each`.
template <typename Header>
void dump(mnl_socket* socket, uint16_t type, const Header& header, uint16_t attribute,
          uint32_t value, const std::function<void(const nlmsghdr*)>& each) {
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* request = mnl_nlmsg_put_header(buffer.data());
    request->nlmsg_type = type;
    request->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request->nlmsg_seq = static_cast<uint32_t>(::time(nullptr));
    std::memcpy(mnl_nlmsg_put_extra_header(request, sizeof(Header)), &header, sizeof(Header));
    if (attribute != 0) {
        mnl_attr_put_u32(request, attribute, value);
    }
    if (mnl_socket_sendto(socket, request, request->nlmsg_len) < 0) {
        fail_errno("netlink: cannot ask the kernel for its table");
    }
    auto callback = [](const nlmsghdr* message, void* data) {
        (*static_cast<const std::function<void(const nlmsghdr*)>*>(data))(message);
        return MNL_CB_OK;
    };
    uint32_t port = mnl_socket_get_portid(socket);
    while (true) {
        ssize_t length = mnl_socket_recvfrom(socket, buffer.data(), buffer.size());
        if (length < 0) {
            fail_errno("netlink: cannot read the kernel's table");
        }
        int result = mnl_cb_run(buffer.data(), static_cast<size_t>(length), request->nlmsg_seq,
                                port, callback, const_cast<void*>(static_cast<const void*>(&each)));
        if (result <= MNL_CB_STOP) {
            return;  // done (or an error message, which ends the dump too)
        }
    }
}

// The attributes of a message after its `header_size`-byte header, by type.
std::map<uint16_t, const nlattr*> attributes(const nlmsghdr* message, size_t header_size) {
    std::map<uint16_t, const nlattr*> found;
    auto collect = [](const nlattr* attribute, void* data) {
        (*static_cast<std::map<uint16_t, const nlattr*>*>(data))[mnl_attr_get_type(attribute)] =
            attribute;
        return MNL_CB_OK;
    };
    mnl_attr_parse(message, static_cast<unsigned>(header_size), collect, &found);
    return found;
}

// What the keeper reads of the host each time it plans.
struct HostView {
    SteeringView steering;
    std::map<std::string, std::vector<std::pair<MacAddress, uint16_t>>> learned;  // port -> MACs
    std::vector<MacAddress> local_macs;
};

// Through netlink, not by running ip and bridge: a failover waits for this.
HostView look(mnl_socket* socket, const VirtualSwitch& vswitch) {
    HostView view;
    std::vector<std::string> teamed = vswitch.teamed_uplinks();
    uint32_t bridge = ::if_nametoindex(vswitch.name.c_str());
    if (bridge == 0) {
        return view;  // not applied (yet): nothing to steer
    }
    std::map<uint32_t, std::string> ports;  // by interface index: in the order they came
    ifinfomsg link_request{};
    link_request.ifi_family = AF_UNSPEC;
    // The bridge's ports only (the kernel filters by master), uplinks among
    // them: one that is not a port cannot carry anything.
    dump(socket, RTM_GETLINK, link_request, IFLA_MASTER, bridge, [&](const nlmsghdr* message) {
        if (message->nlmsg_type != RTM_NEWLINK ||
            mnl_nlmsg_get_payload_len(message) < sizeof(ifinfomsg)) {
            return;
        }
        const auto* link = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(message));
        auto found = attributes(message, sizeof(ifinfomsg));
        if (!found.contains(IFLA_IFNAME) ||
            mnl_attr_validate(found[IFLA_IFNAME], MNL_TYPE_STRING) < 0) {
            return;
        }
        if (!found.contains(IFLA_MASTER) || mnl_attr_get_payload_len(found[IFLA_MASTER]) != 4 ||
            mnl_attr_get_u32(found[IFLA_MASTER]) != bridge) {
            return;  // a kernel that did not filter
        }
        std::string name = mnl_attr_get_str(found[IFLA_IFNAME]);
        if (!contains(teamed, name)) {
            ports[static_cast<uint32_t>(link->ifi_index)] = name;
        } else if ((link->ifi_flags & kLowerUp) != 0) {
            view.steering.with_link.insert(name);
        }
    });
    for (const auto& [index, name] : ports) {
        view.steering.ports.push_back(name);
    }
    ndmsg fdb_request{};
    fdb_request.ndm_family = AF_BRIDGE;
    dump(socket, RTM_GETNEIGH, fdb_request, NDA_MASTER, bridge, [&](const nlmsghdr* message) {
        if (message->nlmsg_type != RTM_NEWNEIGH ||
            mnl_nlmsg_get_payload_len(message) < sizeof(ndmsg)) {
            return;
        }
        const auto* entry = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(message));
        auto port = ports.find(static_cast<uint32_t>(entry->ndm_ifindex));
        auto found = attributes(message, sizeof(ndmsg));
        if (port == ports.end() || (entry->ndm_flags & NTF_SELF) != 0 ||
            !found.contains(NDA_LLADDR) || mnl_attr_get_payload_len(found[NDA_LLADDR]) != 6) {
            return;
        }
        MacAddress mac;
        std::memcpy(mac.data(), mnl_attr_get_payload(found[NDA_LLADDR]), 6);
        if (is_multicast(mac)) {
            return;
        }
        view.local_macs.push_back(mac);
        if ((entry->ndm_state & NUD_PERMANENT) == 0) {  // learned: the port's own traffic
            uint16_t vlan =
                found.contains(NDA_VLAN) && mnl_attr_validate(found[NDA_VLAN], MNL_TYPE_U16) >= 0
                    ? mnl_attr_get_u16(found[NDA_VLAN])
                    : 0;
            view.learned[port->second].emplace_back(mac, vlan);
        }
    });
    std::sort(view.local_macs.begin(), view.local_macs.end());
    view.local_macs.erase(std::unique(view.local_macs.begin(), view.local_macs.end()),
                          view.local_macs.end());
    return view;
}

// Tells the physical switches behind `uplink` that `mac` is there now.
void announce(int packet_socket, const std::string& uplink, MacAddress mac, uint16_t vlan,
              uint16_t native_vlan) {
    std::array<uint8_t, kAnnouncementBytes> frame = rarp_announcement(mac);
    std::vector<uint8_t> bytes(frame.begin(), frame.end());
    if (vlan != 0 && vlan != native_vlan) {
        // An 802.1Q tag after the addresses: TPID 0x8100, then the VID.
        uint8_t tag[4] = {0x81, 0x00, static_cast<uint8_t>(vlan >> 8 & 0x0f),
                          static_cast<uint8_t>(vlan & 0xff)};
        bytes.insert(bytes.begin() + 12, std::begin(tag), std::end(tag));
    }
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(::if_nametoindex(uplink.c_str()));
    to.sll_halen = 6;
    std::fill_n(to.sll_addr, 6, 0xff);
    if (to.sll_ifindex == 0 || ::sendto(packet_socket, bytes.data(), bytes.size(), 0,
                                        reinterpret_cast<const sockaddr*>(&to), sizeof(to)) < 0) {
        spdlog::warn("cannot announce {} on {}: {}", format_mac(mac), uplink, std::strerror(errno));
    }
}

// Waits for a link or address event (or `timeout_ms`), then drains them.
void wait_for_events(mnl_socket* socket, int timeout_ms) {
    pollfd ready{mnl_socket_get_fd(socket), POLLIN, 0};
    if (::poll(&ready, 1, timeout_ms) > 0) {
        std::this_thread::sleep_for(kSettle);
    }
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
    while (mnl_socket_recvfrom(socket, buffer.data(), buffer.size()) > 0) {
        // Only that something changed matters: the keeper looks again.
    }
}

// What the keeper wrote last.
struct KeeperState {
    SteeringPlan plan;
    std::vector<MacAddress> local_macs;
    std::optional<std::chrono::steady_clock::time_point> written_at;  // never, at first
};

// One round of the keeper: look, plan, write, announce. False when the
// switch is gone or no longer steered (its table removed).
bool steer_once(const std::string& switch_name, const NetworkConfig& config, mnl_socket* tables,
                int packets, Nftables& nftables, KeeperState& state) {
    const VirtualSwitch* vswitch = config.find_switch(switch_name);
    if (vswitch == nullptr || !vswitch->steered()) {
        spdlog::info("switch {}: {}; its steering ends", switch_name,
                     vswitch == nullptr ? "deleted" : "no longer steered");
        remove_steering_table(switch_name);
        return false;
    }
    HostView view = look(tables, *vswitch);
    SteeringPlan next = plan_steering(*vswitch, view.steering, state.plan);
    if (state.written_at && next == state.plan &&
        (view.local_macs == state.local_macs ||
         std::chrono::steady_clock::now() - *state.written_at < kAddressRewriteInterval)) {
        return true;  // a new address waits for the next round after the interval
    }
    nftables.run(steering_table(*vswitch, next, view.local_macs),
                 fmt::format("switch {}", switch_name));
    if (next.carrying != state.plan.carrying || next.pins != state.plan.pins) {
        spdlog::info("switch {}: carrying {}; ports {}", switch_name,
                     fmt::join(next.carrying, ", "), describe_pins(next.pins));
    }
    for (const auto& [port, uplink] : next.pins) {
        auto was = state.plan.pins.find(port);
        if (!vswitch->teaming.notify_switches || was == state.plan.pins.end() ||
            was->second == uplink) {
            continue;
        }
        for (const auto& [mac, vlan] : view.learned[port]) {
            announce(packets, uplink, mac, vlan, config.native_vlan(switch_name));
        }
    }
    state.plan = std::move(next);
    state.local_macs = std::move(view.local_macs);
    state.written_at = std::chrono::steady_clock::now();
    return true;
}

}  // namespace

SteeringPlan plan_steering(const VirtualSwitch& vswitch, const SteeringView& view,
                           const SteeringPlan& before) {
    SteeringPlan plan;
    plan.carrying = carrying_uplinks(vswitch, view, before);
    std::vector<std::string> active = vswitch.active_uplinks();
    for (const std::string& port : view.ports) {
        auto home = before.homes.find(port);
        if (home != before.homes.end() && contains(active, home->second)) {
            plan.homes[port] = home->second;
        } else {
            plan.homes[port] = least_loaded(active, plan.homes);
        }
    }
    if (plan.carrying.empty()) {
        return plan;  // nothing to send through: every port waits
    }
    // First the ports that stay home or where they are, then the others
    // where there are fewest.
    std::vector<std::string> displaced;
    for (const std::string& port : view.ports) {
        const std::string& home = plan.homes[port];
        auto previous = before.pins.find(port);
        bool kept = previous != before.pins.end() && contains(plan.carrying, previous->second);
        if (contains(plan.carrying, home) &&
            (vswitch.teaming.failback || !kept || previous->second == home)) {
            plan.pins[port] = home;
        } else if (kept) {
            plan.pins[port] = previous->second;
        } else {
            displaced.push_back(port);
        }
    }
    for (const std::string& port : displaced) {
        plan.pins[port] = least_loaded(plan.carrying, plan.pins);
    }
    return plan;
}

std::string describe_pins(const std::map<std::string, std::string>& pins) {
    std::vector<std::string> parts;
    for (const auto& [port, uplink] : pins) {
        parts.push_back(port + " -> " + uplink);
    }
    return parts.empty() ? "-" : fmt::format("{}", fmt::join(parts, ", "));
}

std::string steering_table_name(const std::string& switch_name) {
    return fmt::format("{}{}", kTablePrefix, switch_name);
}

std::string steering_table(const VirtualSwitch& vswitch, const SteeringPlan& plan,
                           const std::vector<MacAddress>& local_macs) {
    std::string table = steering_table_name(vswitch.name);
    std::string text = fmt::format(
        "add table bridge {0}\ndelete table bridge {0}\ntable bridge {0} {{\n"
        "  set uplinks {{ type ifname; elements = {{ {1} }}; }}\n"
        "  set pins {{ type ifname . ifname; }}\n"
        "  set local_macs {{ type ether_addr; }}\n"
        "  chain prerouting {{ type filter hook prerouting priority 0;\n"
        "    iifname @uplinks ether saddr @local_macs counter drop\n  }}\n"
        "  chain forward {{ type filter hook forward priority 0;\n"
        "    iifname @uplinks ether daddr & 01:00:00:00:00:00 == 01:00:00:00:00:00 "
        "oifname . iifname != @pins counter drop\n",
        table, quoted_list(vswitch.teamed_uplinks()));
    bool by_mac = vswitch.teaming.load_balancing == NicTeaming::LoadBalancing::SourceMac;
    if (!by_mac || plan.carrying.empty()) {
        text += "    oifname @uplinks iifname . oifname != @pins counter drop\n  }\n";
    } else {
        std::vector<std::string> branches;
        for (size_t i = 0; i < plan.carrying.size(); ++i) {
            branches.push_back(fmt::format("{} : jump via_{}", i, i));
        }
        text += fmt::format("    oifname @uplinks jhash ether saddr mod {} vmap {{ {} }}\n  }}\n",
                            plan.carrying.size(), fmt::join(branches, ", "));
        for (size_t i = 0; i < plan.carrying.size(); ++i) {
            text += fmt::format("  chain via_{} {{ oifname != \"{}\" counter drop; }}\n", i,
                                plan.carrying[i]);
        }
    }
    text += "}\n";
    for (const auto& [port, uplink] : plan.pins) {
        text +=
            fmt::format("add element bridge {} pins {{ \"{}\" . \"{}\" }}\n", table, port, uplink);
    }
    for (const MacAddress& mac : local_macs) {
        text += fmt::format("add element bridge {} local_macs {{ {} }}\n", table, format_mac(mac));
    }
    return text;
}

std::map<std::string, std::string> applied_pins(const std::string& switch_name) {
    Nftables nftables(/*json_output=*/true);
    std::optional<std::string> listing =
        nftables.try_run(fmt::format("list set bridge {} pins", steering_table_name(switch_name)));
    std::map<std::string, std::string> pins;
    json parsed = listing ? json::parse(*listing, nullptr, false) : json();
    if (!parsed.is_object()) {
        return pins;
    }
    // {"nftables": [..., {"set": {"elem": [{"concat": ["tap0", "eth1"]}, ...]}}]}
    for (const json& item : parsed.value("nftables", json::array())) {
        const json set = item.value("set", json::object());
        for (const json& element : set.value("elem", json::array())) {
            const json concat =
                element.is_object() ? element.value("concat", json::array()) : json::array();
            if (concat.size() == 2 && concat[0].is_string() && concat[1].is_string()) {
                pins[concat[0].get<std::string>()] = concat[1].get<std::string>();
            }
        }
    }
    return pins;
}

void remove_steering_table(const std::string& switch_name) {
    Nftables nftables;
    nftables.try_run(fmt::format("delete table bridge {}", steering_table_name(switch_name)));
}

void keep_steering(const std::string& switch_name,
                   const std::function<NetworkConfig()>& configuration,
                   const std::atomic<bool>& stop) {
    if (!fits_nft_identifier(switch_name)) {
        fail("switch {}: its steering needs a name of letters, digits, '_', '-' and '.'",
             switch_name);
    }
    NetlinkSocket events = open_netlink(RTMGRP_LINK | RTMGRP_NEIGH, switch_name);
    NetlinkSocket tables = open_netlink(0, switch_name);
    UniqueFd packets(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
    if (!packets) {
        fail_errno("switch {}: cannot open a packet socket for announcements", switch_name);
    }
    Nftables nftables;
    KeeperState state;
    // A keeper started again (after a crash, or `vireo switch apply` after
    // a kill) leaves the ports where the table has them.
    state.plan.pins = applied_pins(switch_name);
    state.plan.homes = state.plan.pins;
    while (!stop) {
        try {
            if (!steer_once(switch_name, configuration(), tables.get(), packets.get(), nftables,
                            state)) {
                return;
            }
        } catch (const Error& error) {
            // A configuration being rewritten, an interface going as it was
            // read: the next event or tick tries again.
            spdlog::error("switch {}: {}", switch_name, error.what());
        }
        wait_for_events(events.get(), kQuietReplanMs);
    }
}

}  // namespace vireo
