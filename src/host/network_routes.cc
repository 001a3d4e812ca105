#include "host/network_routes.h"

#include <fmt/format.h>

#include "base/json_object_reader.h"
#include "host/api_error.h"
#include "host/api_request.h"
#include "host/network_report.h"

namespace vireo {
namespace {

using nlohmann::json;

json document(const NetworkConfig& config) {
    return {{"revision", NetworkRegistry::revision(config)}, {"configuration", config.to_json()}};
}

}  // namespace

NetworkRoutes::NetworkRoutes(NetworkRegistry& registry, HostDatabase& database,
                             std::filesystem::path state_dir)
    : registry_(registry), database_(database), state_dir_(std::move(state_dir)) {}

bool NetworkRoutes::serves(const ApiRequest& request) {
    const std::vector<std::string>& path = request.path;
    if (path.size() < 2 || path[0] != "v1") {
        return false;
    }
    return (path[1] == "network" && path.size() <= 3) ||
           (path[1] == "switches" && path.size() <= 3) ||
           ((path[1] == "portgroups" || path[1] == "hostports") && path.size() == 2);
}

ApiResponse NetworkRoutes::handle(const ApiRequest& request) {
    const std::vector<std::string>& path = request.path;
    const std::string& method = request.method;
    if (path[1] == "network" && path.size() == 2 && method == "GET") {
        return {200, document(registry_.read())};
    }
    if (path[1] == "network" && path.size() == 2 && method == "PUT") {
        return replace(request);
    }
    if (path[1] == "network" && path.size() == 3 && path[2] == "apply" && method == "POST") {
        NetworkConfig config = registry_.apply();
        json reports = json::array();
        for (const VirtualSwitch& vswitch : config.switches) {
            reports.push_back(switch_report(config, vswitch, false, state_dir_));
        }
        return {200, {{"switches", reports}}};
    }
    if (path[1] == "switches" && method == "GET") {
        return switches(request);
    }
    if (path[1] == "portgroups" && method == "GET") {
        NetworkConfig config = registry_.read();
        json reports = json::array();
        for (const PortGroup& portgroup : config.portgroups) {
            reports.push_back(portgroup_report(config, portgroup));
        }
        return {200, {{"portgroups", reports}}};
    }
    if (path[1] == "hostports" && method == "GET") {
        json reports = json::array();
        for (const HostPort& hostport : registry_.read().hostports) {
            reports.push_back(hostport_report(hostport));
        }
        return {200, {{"hostports", reports}}};
    }
    refuse(405, "{} is not allowed on /{}", method, fmt::join(path, "/"));
}

ApiResponse NetworkRoutes::replace(const ApiRequest& request) {
    json body = body_object(request);
    std::string revision;
    json configuration;
    try {
        const std::string where = "body";
        ObjectReader reader(body, "", where);
        revision = reader.required_string(
            "revision", "the revision of the configuration read (GET /v1/network)");
        const json* found = reader.find("configuration");
        if (found == nullptr || !found->is_object()) {
            reader.error("configuration", "missing, or not an object (docs/networking.md)");
        }
        configuration = *found;
        reader.refuse_unknown_fields();
    } catch (const Error& error) {
        refuse(400, "{}", error.what());
    }
    NetworkConfig changed;
    try {
        NetworkConfig wanted = NetworkConfig::from_json(configuration, "configuration");
        changed = registry_.replace(wanted, revision);
    } catch (const ApiError&) {
        throw;
    } catch (const Error& error) {
        refuse(400, "{}", error.what());
    }
    database_.add_event(
        "", "network.changed",
        fmt::format("network configuration replaced: {} switch(es), {} port "
                    "group(s), {} host port(s)",
                    changed.switches.size(), changed.portgroups.size(), changed.hostports.size()));
    return {200, document(changed)};
}

ApiResponse NetworkRoutes::switches(const ApiRequest& request) {
    NetworkConfig config = registry_.read();
    if (request.path.size() == 3) {
        const VirtualSwitch* vswitch = config.find_switch(request.path[2]);
        if (vswitch == nullptr) {
            refuse(404, "switch {}: no such switch", request.path[2]);
        }
        return {200, switch_report(config, *vswitch, true, state_dir_)};
    }
    json reports = json::array();
    for (const VirtualSwitch& vswitch : config.switches) {
        reports.push_back(switch_report(config, vswitch, false, state_dir_));
    }
    return {200, {{"switches", reports}}};
}

}  // namespace vireo
