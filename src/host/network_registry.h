#pragma once

#include <filesystem>
#include <functional>
#include <string>

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
    // What a vNIC takes from the port group its TAP was plugged into.
    struct VmPort {
        SecurityPolicy security;
        // The switch's team (bond) when it notifies switches: the vNIC
        // announces its MAC after each failover of it. Empty otherwise.
        std::string team;
    };

    // `keeper_binary`: the vireo command that `switch steer` runs as the
    // steering keepers (empty: this process's own binary, when it is vireo).
    explicit NetworkRegistry(std::filesystem::path state_dir,
                             std::filesystem::path keeper_binary = {});

    const std::filesystem::path& file() const { return state_.file(); }

    // The stored configuration; empty when there is no file yet.
    NetworkConfig read() const;

    // Under the exclusive lock: `change` edits the stored configuration (and
    // throws to refuse), the result is validated, checked against the host
    // (uplinks exist), stored, and applied, still under the lock so that two
    // commands apply in the order they stored. Returns what was stored.
    NetworkConfig update(const std::function<void(NetworkConfig&)>& change);

    // A digest of `config`, which changes with every change of it: a client
    // reads the configuration with its revision, edits it, and replaces it
    // only if no one changed it meanwhile.
    static std::string revision(const NetworkConfig& config);

    // update() with `wanted` as the new configuration, refused (ApiError 409)
    // when the stored one is no longer at `expected_revision`, or when a port
    // group that goes still has ports (VMs, host ports). The ports of a port
    // group whose security policy changed take the new one at once.
    NetworkConfig replace(const NetworkConfig& wanted, const std::string& expected_revision);

    // Applies the stored configuration again; returns it.
    NetworkConfig apply() const;

    // Makes `tap` (a vNIC's TAP, which must exist) a port of `portgroup` as
    // stored now: on its switch, with its VLANs and MTU, up. Throws
    // vireo::Error naming the port group (and this file when it has none of
    // that name).
    VmPort plug_vm_port(const std::string& portgroup, const std::string& tap) const;

private:
    NetworkConfig load() const;

    StateFile state_;
    std::filesystem::path keeper_binary_;
};

}  // namespace vireo
