#pragma once

#include <CLI/CLI.hpp>

namespace vireo::cli {

// `vireo run`: one VM in the foreground, console on the terminal.
void add_run_command(CLI::App& app);

}  // namespace vireo::cli
