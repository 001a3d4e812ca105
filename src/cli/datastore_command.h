#pragma once

#include <CLI/CLI.hpp>

namespace vireo::cli {

// `vireo datastore add NAME PATH | list | remove NAME`: the directories this
// host keeps VM folders in (registry: $VIREO_STATE_DIR/datastores.json).
void add_datastore_command(CLI::App& app);

}  // namespace vireo::cli
