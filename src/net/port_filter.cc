#include "net/port_filter.h"

#include <net/if.h>
#include <nftables/libnftables.h>

#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "base/error.h"

namespace vireo {
namespace {

constexpr std::string_view kTablePrefix = "vireo-port-";

// nftables takes a table name as a bare identifier; a TAP name outside these
// characters cannot be one (and Vireo's own never are).
bool fits_identifier(const std::string& name) {
    return !name.empty() && std::isalpha(static_cast<unsigned char>(name[0])) &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                      c == '.';
           });
}

std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> new_context() {
    std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> context(nft_ctx_new(NFT_CTX_DEFAULT),
                                                         nft_ctx_free);
    if (!context) {
        fail("nftables: cannot create a context (libnftables)");
    }
    nft_ctx_buffer_output(context.get());
    nft_ctx_buffer_error(context.get());
    return context;
}

// Runs `commands` as one transaction; returns what nft printed, or throws
// with its error text.
std::string run_commands(nft_ctx* context, const std::string& commands, std::string_view what) {
    if (nft_run_cmd_from_buffer(context, commands.c_str()) != 0) {
        std::string error = nft_ctx_get_error_buffer(context);
        error.erase(error.find_last_not_of('\n') + 1);
        fail("{}: nftables refused the rules: {}", what, error);
    }
    return nft_ctx_get_output_buffer(context);
}

}  // namespace

PortFilter::PortFilter(std::string tap, MacAddress own_mac, SecurityPolicy policy)
    : tap_(std::move(tap)),
      table_(fmt::format("{}{}", kTablePrefix, tap_)),
      own_mac_(own_mac),
      policy_(policy),
      context_(new_context()) {
    if (!fits_identifier(tap_)) {
        fail("tap {}: the security policy needs a TAP name of letters, digits, '_', '-' and '.'",
             tap_);
    }
    // Creating the table first makes the delete succeed when there was none.
    run(
        fmt::format("add table netdev {0}\n"
                    "delete table netdev {0}\n"
                    "table netdev {0} {{\n"
                    "  chain from_vm {{ type filter hook ingress device \"{1}\" priority 0; }}\n"
                    "  chain to_vm {{ type filter hook egress device \"{1}\" priority 0; }}\n"
                    "}}\n{2}",
                    table_, tap_, rules(own_mac)));
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
    run(fmt::format("flush chain netdev {0} from_vm\nflush chain netdev {0} to_vm\n{1}", table_,
                    rules(mac)));
}

std::string PortFilter::rules(MacAddress effective) const {
    std::string text;
    std::string mac = format_mac(effective);
    if (!policy_.forged_transmits) {
        text +=
            fmt::format("add rule netdev {} from_vm ether saddr != {} counter drop\n", table_, mac);
    }
    if (!policy_.mac_changes && effective != own_mac_) {
        text += fmt::format("add rule netdev {} to_vm counter drop\n", table_);
    }
    if (!policy_.promiscuous) {
        // Unicast (the group bit clear) for another address.
        text += fmt::format(
            "add rule netdev {} to_vm ether daddr & 01:00:00:00:00:00 == 00:00:00:00:00:00 "
            "ether daddr != {} counter drop\n",
            table_, mac);
    }
    return text;
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
    return run_commands(context_.get(), commands, fmt::format("tap {}", tap_));
}

size_t PortFilter::remove_stale() {
    auto context = new_context();
    std::istringstream tables(run_commands(context.get(), "list tables netdev", "nftables"));
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
            run_commands(context.get(), fmt::format("delete table netdev {}", name), "nftables");
            ++removed;
        }
    }
    return removed;
}

}  // namespace vireo
