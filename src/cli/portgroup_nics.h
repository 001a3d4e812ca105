#pragma once

#include <vector>

#include "base/unique_fd.h"
#include "vmm/vm_config.h"

namespace vireo::cli {

// Plugs each vNIC that names a port group into it, before vireo-vmm starts:
// a new TAP (vireo<pid>n<index>) per vNIC, made a port of the port group's
// switch with its VLANs (host configuration: $VIREO_STATE_DIR/network.json),
// and handed over as an fd vireo-vmm inherits (`tap`, `tap_fd` are filled
// in). Returns those fds, open across exec; once vireo-vmm and this process
// have closed them, the TAPs and their switch ports are gone.
std::vector<UniqueFd> plug_portgroup_nics(std::vector<VmConfig::Nic>& nics);

}  // namespace vireo::cli
