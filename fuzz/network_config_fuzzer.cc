// The host's network configuration (network.json) from arbitrary bytes: the
// parser and its rules either accept a configuration that then round-trips
// and maps onto port VLANs, or refuse it with a vireo::Error, never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "net/network_config.h"
#include "net/switch_datapath.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    nlohmann::json document = nlohmann::json::parse(data, data + size, nullptr, false);
    if (document.is_discarded()) {
        return 0;
    }
    vireo::NetworkConfig config;
    try {
        config = vireo::NetworkConfig::from_json(document, "network.json");
    } catch (const vireo::Error&) {
        return 0;
    }
    vireo::NetworkConfig again = vireo::NetworkConfig::from_json(config.to_json(), "again");
    if (again.to_json() != config.to_json()) {
        std::abort();  // what was written must read back the same
    }
    for (const vireo::PortGroup& portgroup : config.portgroups) {
        vireo::PortVlans vlans = vireo::portgroup_port_vlans(config, portgroup);
        if (vlans.pvid == 0 || !vlans.untagged_by_vid.at(vlans.pvid)) {
            std::abort();  // every port takes its untagged frames somewhere
        }
    }
    return 0;
}
