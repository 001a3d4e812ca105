#include "host/network_registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/error.h"
#include "host/api_error.h"
#include "host/steering_keepers.h"
#include "net/port_filter.h"
#include "net/switch_datapath.h"

namespace vireo {

namespace {

constexpr int kFileVersion = 1;

// A stored configuration that could not be applied is kept: the message says
// so, and how to try again. Steered switches get their keepers (`vireo switch
// steer`), which re-plan at once; those of switches no longer steered end by
// themselves.
void apply_stored(const NetworkConfig& config, const std::filesystem::path& file,
                  const std::filesystem::path& keeper_binary) {
    try {
        SwitchDatapath::apply(config);
        SteeringKeepers(file.parent_path())
            .start_missing(config, keeper_binary.empty()
                                       ? std::filesystem::read_symlink("/proc/self/exe")
                                       : keeper_binary);
    } catch (const Error& e) {
        fail("{} (the configuration is stored in {}; `vireo switch apply` applies it again)",
             e.what(), file.string());
    }
}

}  // namespace

NetworkRegistry::NetworkRegistry(std::filesystem::path state_dir,
                                 std::filesystem::path keeper_binary)
    : state_(std::move(state_dir), "network", kFileVersion),
      keeper_binary_(std::move(keeper_binary)) {}

std::string NetworkRegistry::revision(const NetworkConfig& config) {
    return fmt::format("{:016x}", std::hash<std::string>{}(config.to_json().dump()));
}

NetworkConfig NetworkRegistry::load() const {
    std::optional<nlohmann::json> document = state_.load();
    return document ? NetworkConfig::from_json(*document, state_.file().string()) : NetworkConfig{};
}

NetworkConfig NetworkRegistry::read() const {
    if (!std::filesystem::exists(state_.file())) {
        return {};
    }
    StateFile::Lock lock = state_.lock(false);
    return load();
}

NetworkConfig NetworkRegistry::update(const std::function<void(NetworkConfig&)>& change) {
    StateFile::Lock lock = state_.lock(true);
    NetworkConfig config = load();
    change(config);
    config.validate(state_.file().string());
    SwitchDatapath::check_applicable(config);
    state_.store(config.to_json());
    apply_stored(config, state_.file(), keeper_binary_);
    return config;
}

NetworkConfig NetworkRegistry::replace(const NetworkConfig& wanted,
                                       const std::string& expected_revision) {
    NetworkConfig before;
    NetworkConfig after = update([&](NetworkConfig& config) {
        if (revision(config) != expected_revision) {
            refuse(409,
                   "revision: the network configuration changed meanwhile (now {}, not {}): read "
                   "it again and redo the change",
                   revision(config), expected_revision);
        }
        for (const PortGroup& portgroup : config.portgroups) {
            std::vector<std::string> ports = SwitchDatapath::portgroup_ports(portgroup.name);
            if (wanted.find_portgroup(portgroup.name) == nullptr && !ports.empty()) {
                refuse(409,
                       "port group {} has ports in use ({}): stop those VMs and delete those "
                       "host ports first",
                       portgroup.name, fmt::join(ports, ", "));
            }
        }
        before = config;
        config = wanted;
    });
    for (const PortGroup& portgroup : after.portgroups) {
        const PortGroup* old = before.find_portgroup(portgroup.name);
        if (old == nullptr ||
            before.security_of(*old).describe() != after.security_of(portgroup).describe()) {
            for (const std::string& port : SwitchDatapath::portgroup_ports(portgroup.name)) {
                PortFilter::apply_policy(port, after.security_of(portgroup));
            }
        }
    }
    return after;
}

NetworkConfig NetworkRegistry::apply() const {
    StateFile::Lock lock = state_.lock(true);
    NetworkConfig config = load();
    apply_stored(config, state_.file(), keeper_binary_);
    return config;
}

NetworkRegistry::VmPort NetworkRegistry::plug_vm_port(const std::string& portgroup,
                                                      const std::string& tap) const {
    NetworkConfig config = read();
    const PortGroup* found = config.find_portgroup(portgroup);
    if (found == nullptr) {
        fail("port group {}: no such port group in {} (vireo portgroup list shows them)", portgroup,
             file().string());
    }
    SwitchDatapath::plug(config, *found, tap);
    VmPort port{config.security_of(*found), ""};
    const VirtualSwitch& vswitch = *config.find_switch(found->vswitch);
    if (vswitch.bonded() && vswitch.teaming.notify_switches) {
        port.team = vswitch.team_interface();
    }
    return port;
}

}  // namespace vireo
