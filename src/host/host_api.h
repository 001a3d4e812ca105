#pragma once

#include <memory>

#include "host/api_server.h"
#include "host/api_tokens.h"
#include "host/host_database.h"
#include "host/network_routes.h"
#include "host/task_manager.h"
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
//   GET    /v1/vms/NAME/console[?offset=N] its console log from that byte on;
//                                        as a WebSocket: the console, both ways
//   POST   /v1/vms/NAME/template         make it a template (cloned, never run)
//   POST   /v1/vms/NAME/rename {"name"}; POST /v1/vms/NAME/disks {"size", "format"};
//   DELETE /v1/vms/NAME/disks/INDEX[?files=true]; POST .../INDEX/convert {"format"}: a task
//   POST   /v1/vms/NAME/clone            {"name", "datastore", "linked"}: a task
//   GET    /v1/vms/NAME/snapshots, POST {"name"}; POST .../SNAP/revert; DELETE .../SNAP (a task)
//   GET    /v1/tasks, GET /v1/tasks/ID, POST /v1/tasks/ID/cancel
//   GET    /v1/events[?after=ID&limit=N] the event log, oldest first
//   GET    /v1/tokens, POST /v1/tokens {"name", "role"}, DELETE /v1/tokens/NAME
//   GET    /v1/datastores, POST {"name", "path"}; GET, DELETE /v1/datastores/NAME[?force=true]
//   /v1/network, /v1/switches, /v1/portgroups, /v1/hostports: network_routes.h
//   GET    /metrics                      Prometheus text: per VM and host totals
// The Unix socket is root's: everything is allowed there. Over TCP a request
// carries a bearer token (401 without a valid one); a read-only token may
// only GET (403), and only an admin token sees or changes tokens.
class HostApi {
public:
    // What /v1/host says of the TCP listener (empty: there is none).
    struct Listener {
        std::string address;
        std::string tls_fingerprint;
    };

    HostApi(HostDatabase& database, VmInventory& inventory, VmmSupervisor& supervisor,
            TaskManager& tasks, NetworkRoutes& network, Listener listener);

    ApiResponse handle(const ApiRequest& request);
    // A WebSocket to /v1/vms/NAME/console[?offset=N] (admin: it types).
    std::unique_ptr<WebSocketSession> open_websocket(const ApiRequest& request);

private:
    // Who sent the request; 401 without a valid token over TCP, 403 for a
    // read-only token asking for more than a GET.
    ApiRole authorize(const ApiRequest& request);
    nlohmann::json describe(const VmEntry& vm, bool with_runtime);
    ApiResponse vms(const ApiRequest& request);
    ApiResponse vm(const ApiRequest& request);
    ApiResponse power(const ApiRequest& request, const std::string& action);
    ApiResponse console(const ApiRequest& request);
    ApiResponse metrics();
    ApiResponse events(const ApiRequest& request);
    ApiResponse tokens(const ApiRequest& request);
    ApiResponse clone(const ApiRequest& request);
    ApiResponse disks(const ApiRequest& request);
    ApiResponse snapshots(const ApiRequest& request);
    ApiResponse tasks(const ApiRequest& request);
    ApiResponse datastores(const ApiRequest& request);
    // 404 for no such VM; 409 while it runs or a task works on it.
    void require_off(const std::string& vm);
    ApiResponse host();

    HostDatabase& database_;
    VmInventory& inventory_;
    VmmSupervisor& supervisor_;
    TaskManager& tasks_;
    NetworkRoutes& network_;
    Listener listener_;
};

}  // namespace vireo
