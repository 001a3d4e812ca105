#pragma once

#include "host/api_server.h"
#include "host/host_database.h"
#include "host/vm_inventory.h"
#include "host/vmm_supervisor.h"

namespace vireo {

// The REST API of the host agent (docs/api/openapi.json describes it):
//   GET    /v1/host                      the host and its counts
//   GET    /v1/vms                       every VM, with its power state
//   POST   /v1/vms                       create {"name", "datastore", "definition"}
//   GET    /v1/vms/NAME                  one VM (running: the VMM's info too)
//   PATCH  /v1/vms/NAME                  change vcpus, memory_mib, boot while it is off
//   DELETE /v1/vms/NAME[?files=true]     unregister it, or delete its folder too
//   POST   /v1/vms/NAME/start|stop|reset|shutdown|pause|resume
//   GET    /v1/vms/NAME/console[?offset=N] its console log from that byte on
//   GET    /v1/events[?after=ID&limit=N] the event log, oldest first
//   GET    /metrics                      Prometheus text: per VM and host totals
class HostApi {
public:
    HostApi(HostDatabase& database, VmInventory& inventory, VmmSupervisor& supervisor);

    ApiResponse handle(const ApiRequest& request);

private:
    nlohmann::json describe(const VmEntry& vm, bool with_runtime);
    ApiResponse vms(const ApiRequest& request);
    ApiResponse vm(const ApiRequest& request);
    ApiResponse power(const ApiRequest& request, const std::string& action);
    ApiResponse console(const ApiRequest& request);
    ApiResponse metrics();
    ApiResponse events(const ApiRequest& request);
    ApiResponse host();

    HostDatabase& database_;
    VmInventory& inventory_;
    VmmSupervisor& supervisor_;
};

}  // namespace vireo
