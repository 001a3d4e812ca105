#pragma once

#include <CLI/CLI.hpp>

namespace vireo::cli {

// `vireo disk create|info|check|snapshot|clone|convert|resize|bench`: disk
// images (raw, qcow2) through Vireo's block layer, interoperable with
// qemu-img. Every command has human output and --json; exit status 2 for bad
// input, and `check` exits 1 when it finds problems that remain.
void add_disk_command(CLI::App& app);

}  // namespace vireo::cli
