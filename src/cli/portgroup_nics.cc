#include "cli/portgroup_nics.h"

#include <net/if.h>
#include <unistd.h>

#include <fmt/format.h>

#include "base/error.h"
#include "host/network_registry.h"
#include "net/port_filter.h"
#include "net/tap.h"

namespace vireo::cli {

namespace {

// A TAP name no interface has now: `Tap` attaches to an existing one, and a
// VM must never share another's.
std::string fresh_tap_name(size_t index) {
    for (unsigned attempt = 0; attempt < 100; ++attempt) {
        std::string name = fmt::format("vireo{}n{}", (::getpid() + attempt) % 100000, index);
        if (::if_nametoindex(name.c_str()) == 0) {
            return name;
        }
    }
    fail("--nic {}: no free TAP name of the form vireo<N>n{}", index, index);
}

}  // namespace

std::vector<UniqueFd> plug_portgroup_nics(std::vector<VmConfig::Nic>& nics) {
    std::vector<UniqueFd> handed_over;
    bool any = false;
    for (const VmConfig::Nic& nic : nics) {
        any = any || !nic.portgroup.empty();
    }
    if (!any) {
        return handed_over;
    }
    NetworkRegistry registry(StateFile::default_dir());
    PortFilter::remove_stale();  // what VMMs killed before they could clean up left
    for (size_t index = 0; index < nics.size(); ++index) {
        VmConfig::Nic& nic = nics[index];
        if (nic.portgroup.empty()) {
            continue;
        }
        nic.tap = fresh_tap_name(index);
        Tap tap(nic.tap, nic.queues > 1);  // vireo-vmm attaches the other queues
        NetworkRegistry::VmPort port;
        try {
            port = registry.plug_vm_port(nic.portgroup, nic.tap);
        } catch (const Error& error) {
            fail("--nic portgroup={}: {}", nic.portgroup, error.what());
        }
        nic.security = port.security;
        nic.team = port.team;
        // dup() leaves close-on-exec off: vireo-vmm inherits this copy.
        UniqueFd inherited(::dup(tap.fd()));
        if (!inherited) {
            fail_errno("--nic portgroup={}: dup of the TAP's fd", nic.portgroup);
        }
        nic.tap_fd = inherited.get();
        handed_over.push_back(std::move(inherited));
    }
    return handed_over;
}

}  // namespace vireo::cli
