#include "net/port_filter.h"

#include <net/if.h>

#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "base/error.h"
#include "net/nftables.h"

namespace vireo {
namespace {

constexpr std::string_view kTablePrefix = "vireo-port-";

std::string table_name(const std::string& tap) {
    return fmt::format("{}{}", kTablePrefix, tap);
}

// The policy's rules, in terms of the table's sets.
std::string policy_rules(const std::string& table, const SecurityPolicy& policy) {
    std::string text =
        fmt::format("flush chain netdev {0} from_vm\nflush chain netdev {0} to_vm\n", table);
    if (!policy.forged_transmits) {
        text += fmt::format("add rule netdev {} from_vm ether saddr != @effective counter drop\n",
                            table);
    }
    if (!policy.mac_changes) {
        text += fmt::format("add rule netdev {} to_vm oifname @cut_off counter drop\n", table);
    }
    if (!policy.promiscuous) {
        // Unicast (the group bit clear) for another address.
        text += fmt::format(
            "add rule netdev {} to_vm ether daddr & 01:00:00:00:00:00 == 00:00:00:00:00:00 "
            "ether daddr != @effective counter drop\n",
            table);
    }
    return text;
}

}  // namespace

PortFilter::PortFilter(std::string tap, MacAddress own_mac, SecurityPolicy policy)
    : tap_(std::move(tap)),
      table_(table_name(tap_)),
      own_mac_(own_mac),
      nftables_(std::make_unique<Nftables>()) {
    if (!fits_nft_identifier(tap_)) {
        fail("tap {}: the security policy needs a TAP name of letters, digits, '_', '-' and '.'",
             tap_);
    }
    // Creating the table first makes the delete succeed when there was none.
    run(
        fmt::format("add table netdev {0}\n"
                    "delete table netdev {0}\n"
                    "table netdev {0} {{\n"
                    "  set effective {{ type ether_addr; }}\n"
                    "  set cut_off {{ type ifname; }}\n"
                    "  chain from_vm {{ type filter hook ingress device \"{1}\" priority 0; }}\n"
                    "  chain to_vm {{ type filter hook egress device \"{1}\" priority 0; }}\n"
                    "}}\n"
                    "add element netdev {0} effective {{ {2} }}\n{3}",
                    table_, tap_, format_mac(own_mac), policy_rules(table_, policy)));
}

PortFilter::~PortFilter() {
    try {
        run(fmt::format("delete table netdev {}\n", table_));
    } catch (const Error&) {
        // The TAP went first and took the chains with it; an empty table
        // is left for remove_stale.
    }
}

void PortFilter::set_effective_mac(MacAddress mac) {
    std::string commands = fmt::format(
        "flush set netdev {0} effective\nadd element netdev {0} effective {{ {1} }}\n"
        "flush set netdev {0} cut_off\n",
        table_, format_mac(mac));
    if (mac != own_mac_) {
        commands += fmt::format("add element netdev {} cut_off {{ \"{}\" }}\n", table_, tap_);
    }
    run(commands);
}

bool PortFilter::apply_policy(const std::string& tap, const SecurityPolicy& policy) {
    Nftables nftables;
    std::string table = table_name(tap);
    if (!fits_nft_identifier(tap) ||
        !nftables.try_run(fmt::format("list table netdev {}", table))) {
        return false;
    }
    nftables.run(policy_rules(table, policy), fmt::format("tap {}", tap));
    return true;
}

uint64_t PortFilter::dropped() {
    std::istringstream listing(run(fmt::format("list table netdev {}", table_)));
    uint64_t total = 0;
    for (std::string word; listing >> word;) {
        if (word == "counter" && listing >> word && word == "packets") {
            uint64_t packets = 0;
            listing >> packets;
            total += packets;
        }
    }
    return total;
}

std::string PortFilter::run(const std::string& commands) {
    std::lock_guard guard(mutex_);
    return nftables_->run(commands, fmt::format("tap {}", tap_));
}

size_t PortFilter::remove_stale() {
    Nftables nftables;
    std::istringstream tables(nftables.run("list tables netdev", "nftables"));
    size_t removed = 0;
    for (std::string line; std::getline(tables, line);) {
        // "table netdev vireo-port-TAP"
        std::string_view name(line);
        name.remove_prefix(std::min(name.size(), name.rfind(' ') + 1));
        if (!name.starts_with(kTablePrefix)) {
            continue;
        }
        std::string tap(name.substr(kTablePrefix.size()));
        if (::if_nametoindex(tap.c_str()) == 0) {
            nftables.run(fmt::format("delete table netdev {}", name), "nftables");
            ++removed;
        }
    }
    return removed;
}

}  // namespace vireo
