#pragma once

#include <filesystem>

#include "host/api_server.h"
#include "host/host_database.h"
#include "host/network_registry.h"

namespace vireo {

// The network part of vireod's REST API (docs/api/openapi.json), which the
// `vireo switch`, `portgroup` and `hostport` commands use:
//   GET  /v1/network          the configuration (docs/networking.md) and its revision
//   PUT  /v1/network          {"revision", "configuration"}: replace it, applied at once
//   POST /v1/network/apply    make the kernel match it again
//   GET  /v1/switches[/NAME]  switches as configured and as applied (one: with its ports)
//   GET  /v1/portgroups, GET /v1/hostports
// A client edits the configuration it read and sends it back with that
// revision; 409 when another change came first (read again and redo).
class NetworkRoutes {
public:
    NetworkRoutes(NetworkRegistry& registry, HostDatabase& database,
                  std::filesystem::path state_dir);

    // Whether `request` is one of these routes.
    static bool serves(const ApiRequest& request);
    ApiResponse handle(const ApiRequest& request);

private:
    ApiResponse replace(const ApiRequest& request);
    ApiResponse switches(const ApiRequest& request);

    NetworkRegistry& registry_;
    HostDatabase& database_;
    std::filesystem::path state_dir_;
};

}  // namespace vireo
