#pragma once

#include <CLI/CLI.hpp>

namespace vireo::cli {

// `vireo switch create|delete|list|show|stats|apply|uplink`,
// `vireo portgroup create|set|delete|list` and `vireo hostport
// create|delete|list`: the host's virtual switches, port groups and host
// ports (stored in $VIREO_STATE_DIR/network.json, applied to the kernel as
// Linux bridges and veth pairs).
void add_switch_commands(CLI::App& app);

}  // namespace vireo::cli
