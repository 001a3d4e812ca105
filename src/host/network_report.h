#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "net/network_config.h"

namespace vireo {

// What the host's network looks like, for the API and `vireo switch`: the
// configuration of each switch, port group and host port next to what the
// kernel has (SwitchDatapath::observe), with the differences spelled out.

// A switch: its configuration, its team and steering as applied, whether the
// kernel matches (`applied`, `differences`) and, `with_ports`, each of its
// ports with its VLANs, shaping and counters. `state_dir` holds the steering
// keepers' lock files.
nlohmann::json switch_report(const NetworkConfig& config, const VirtualSwitch& vswitch,
                             bool with_ports, const std::filesystem::path& state_dir);
// A port group: its VLAN, its effective shaping and security, its ports now.
nlohmann::json portgroup_report(const NetworkConfig& config, const PortGroup& portgroup);
nlohmann::json hostport_report(const HostPort& hostport);

}  // namespace vireo
