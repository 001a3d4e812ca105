#pragma once

#include <CLI/CLI.hpp>

namespace vireo::cli {

// `vireo datastore add NAME PATH | list | remove NAME`: the directories this
// host keeps VM folders in, through vireod (which keeps them in its database).
void add_datastore_command(CLI::App& app);

}  // namespace vireo::cli
