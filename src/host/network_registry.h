#pragma once

#include <filesystem>
#include <functional>

#include "host/state_file.h"
#include "net/network_config.h"

namespace vireo {

// The host's virtual switches and port groups, kept in
// `<state dir>/network.json` (a StateFile: locked, atomic changes) and
// applied to the host kernel by SwitchDatapath. The file is what the host
// should have; `vireo switch apply` (at boot, or after a failure) makes the
// kernel match it again.
class NetworkRegistry {
public:
    explicit NetworkRegistry(std::filesystem::path state_dir);

    const std::filesystem::path& file() const { return state_.file(); }

    // The stored configuration; empty when there is no file yet.
    NetworkConfig read() const;

    // Under the exclusive lock: `change` edits the stored configuration (and
    // throws to refuse), the result is validated, checked against the host
    // (uplinks exist), stored, and applied, still under the lock so that two
    // commands apply in the order they stored. Returns what was stored.
    NetworkConfig update(const std::function<void(NetworkConfig&)>& change);

    // Applies the stored configuration again; returns it.
    NetworkConfig apply() const;

private:
    NetworkConfig load() const;

    StateFile state_;
};

}  // namespace vireo
