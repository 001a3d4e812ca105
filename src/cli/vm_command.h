#pragma once

#include <CLI/CLI.hpp>

namespace vireo::cli {

// `vireo vm create|list|show|start|stop|reset|shutdown|pause|resume|reconfigure|
// console|delete` and
// `vireo event list`: the host's VMs through vireod's API (api_client.h).
void add_vm_commands(CLI::App& app);

}  // namespace vireo::cli
