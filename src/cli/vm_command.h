#pragma once

#include <CLI/CLI.hpp>

namespace vireo::cli {

// `vireo vm create|list|show|start|stop|reset|shutdown|pause|resume|reconfigure|
// console|delete`, `vireo console`, `vireo event list` and `vireo token
// create|list|delete`: the host through vireod's API (api_client.h).
void add_vm_commands(CLI::App& app);
// `vireo host show`, under the `host` command.
void add_host_show_command(CLI::App* host);

}  // namespace vireo::cli
