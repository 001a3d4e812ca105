#include "host/vm_ports.h"

#include <spdlog/spdlog.h>

#include "host/api_error.h"

namespace vireo {

VmPorts VmPorts::prepare(const std::string& vm, VmConfig& config, TapOwner owner,
                         const NetworkRegistry& network) {
    VmPorts ports = of_running(vm, config, owner);
    ports.taps_.clear();  // only what is made here is undone on a failure
    if (ports.on_portgroup_) {
        PortFilter::remove_stale();  // what VMMs killed before their release left
    }
    for (size_t index = 0; index < config.nics.size(); ++index) {
        VmConfig::Nic& nic = config.nics[index];
        try {
            if (std::optional<InterfaceOwnership> found = read_interface_ownership(nic.tap)) {
                if (std::optional<std::string> problem =
                        foreign_tap_problem(nic.tap, *found, owner)) {
                    refuse(409,
                           "VM '{}': nics[{}]: {}; vireod creates the TAP of each vNIC of the VMs "
                           "it runs: give the vNIC a name no interface has",
                           vm, index, *problem);
                }
                delete_persistent_tap(nic.tap);
            }
            create_persistent_tap(nic.tap, nic.queues > 1, owner);
            ports.taps_.push_back(nic.tap);
            if (!nic.portgroup.empty()) {
                NetworkRegistry::VmPort port = network.plug_vm_port(nic.portgroup, nic.tap);
                nic.team = port.team;
                ports.filters_.resize(config.nics.size());
                ports.filters_[index] =
                    std::make_unique<PortFilter>(nic.tap, nic.mac, port.security);
            }
        } catch (const ApiError&) {
            ports.release();
            throw;
        } catch (const Error& error) {
            ports.release();
            refuse(500, "VM '{}': nics[{}]: cannot prepare its TAP: {}", vm, index, error.what());
        }
    }
    return ports;
}

VmPorts VmPorts::of_running(const std::string& vm, const VmConfig& config, TapOwner owner) {
    VmPorts ports;
    ports.vm_ = vm;
    ports.owner_ = owner;
    for (const VmConfig::Nic& nic : config.nics) {
        ports.taps_.push_back(nic.tap);
        ports.on_portgroup_ = ports.on_portgroup_ || !nic.portgroup.empty();
    }
    return ports;
}

void VmPorts::follow_mac(size_t nic, const MacAddress& mac) {
    if (nic >= filters_.size() || !filters_[nic]) {
        fail("vNIC {} of VM '{}' is on no port group this vireod prepared", nic, vm_);
    }
    filters_[nic]->set_effective_mac(mac);
}

void VmPorts::release() {
    filters_.clear();  // their tables go with them
    for (const std::string& tap : taps_) {
        try {
            std::optional<InterfaceOwnership> found = read_interface_ownership(tap);
            // Gone already, or no longer this VM's (another VM's by now): left alone.
            if (found && !foreign_tap_problem(tap, *found, owner_)) {
                delete_persistent_tap(tap);
            }
        } catch (const Error& error) {
            spdlog::warn("VM '{}': {}", vm_, error.what());
        }
    }
    if (on_portgroup_ && !taps_.empty()) {
        try {
            PortFilter::remove_stale();  // an adopted VMM's tables, whose TAPs are gone now
        } catch (const Error& error) {
            spdlog::warn("VM '{}': {}", vm_, error.what());
        }
    }
    taps_.clear();
    filters_.clear();
}

}  // namespace vireo
