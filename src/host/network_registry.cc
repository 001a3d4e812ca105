#include "host/network_registry.h"

#include "base/error.h"
#include "host/steering_keepers.h"
#include "net/switch_datapath.h"

namespace vireo {

namespace {

constexpr int kFileVersion = 1;

// A stored configuration that could not be applied is kept: the message says
// so, and how to try again. Steered switches get their keepers (started from
// this very binary, the vireo command), which re-plan at once; those of
// switches no longer steered end by themselves.
void apply_stored(const NetworkConfig& config, const std::filesystem::path& file) {
    try {
        SwitchDatapath::apply(config);
        SteeringKeepers(file.parent_path())
            .start_missing(config, std::filesystem::read_symlink("/proc/self/exe"));
    } catch (const Error& e) {
        fail("{} (the configuration is stored in {}; `vireo switch apply` applies it again)",
             e.what(), file.string());
    }
}

}  // namespace

NetworkRegistry::NetworkRegistry(std::filesystem::path state_dir)
    : state_(std::move(state_dir), "network", kFileVersion) {}

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
    apply_stored(config, state_.file());
    return config;
}

NetworkConfig NetworkRegistry::apply() const {
    StateFile::Lock lock = state_.lock(true);
    NetworkConfig config = load();
    apply_stored(config, state_.file());
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
