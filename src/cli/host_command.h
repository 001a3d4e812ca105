#pragma once

#include <CLI/CLI.hpp>

namespace vireo::cli {

// `vireo host check`: can this host run VMs? Opens /dev/kvm, checks the
// capabilities Vireo needs and creates (and drops) one VM.
void add_host_command(CLI::App& app);

}  // namespace vireo::cli
