#include "host/host_api.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include "base/byte_size.h"
#include "base/json_object_reader.h"
#include "block/snapshot_set.h"
#include "host/api_error.h"
#include "host/api_request.h"
#include "host/console_session.h"
#include "host/vm_snapshots.h"

namespace vireo {
namespace {

using nlohmann::json;

// The string fields of a request's body, in the order asked, and nothing
// else; 400 naming the field otherwise. Each is {key, what it is}.
std::vector<std::string> string_fields(
    const ApiRequest& request, std::initializer_list<std::pair<const char*, const char*>> fields) {
    json body = body_object(request);
    try {
        const std::string where = "body";
        ObjectReader reader(body, "", where);
        std::vector<std::string> values;
        for (const auto& [key, what] : fields) {
            values.push_back(reader.required_string(key, what));
        }
        reader.refuse_unknown_fields();
        return values;
    } catch (const Error& error) {
        refuse(400, "{}", error.what());
    }
}

int64_t query_number(const ApiRequest& request, const std::string& key, int64_t fallback,
                     int64_t max) {
    auto found = request.query.find(key);
    if (found == request.query.end()) {
        return fallback;
    }
    int64_t value = -1;
    const std::string& text = found->second;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < 0 || value > max) {
        refuse(400, "{}: '{}' is not a whole number from 0 to {}", key, text, max);
    }
    return value;
}

// utime + stime of a process, from /proc/PID/stat; 0 when it is gone.
double process_cpu_seconds(pid_t pid) {
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    size_t end_of_name = text.rfind(')');
    if (end_of_name == std::string::npos) {
        return 0;
    }
    std::istringstream fields(text.substr(end_of_name + 2));
    std::string field;
    uint64_t utime = 0, stime = 0;
    for (int index = 3; fields >> field && index <= 15; ++index) {
        if (index == 14) {
            utime = std::stoull(field);
        } else if (index == 15) {
            stime = std::stoull(field);
        }
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// One of a TAP's counters (/sys/class/net/TAP/statistics/NAME); 0 when gone.
uint64_t tap_counter(const std::string& tap, const std::string& name) {
    if (tap.empty() || tap.find('/') != std::string::npos) {
        return 0;
    }
    std::ifstream file(fmt::format("/sys/class/net/{}/statistics/{}", tap, name));
    uint64_t value = 0;
    file >> value;
    return value;
}

json datastore_json(const Datastore& datastore) {
    DatastoreUsage usage = DatastoreRegistry::usage(datastore.path);
    return {{"name", datastore.name},
            {"path", datastore.path.string()},
            {"added", datastore.added},
            {"reachable", usage.reachable},
            {"capacity", usage.reachable ? json(usage.capacity) : json(nullptr)},
            {"free", usage.reachable ? json(usage.free) : json(nullptr)},
            {"vm_folders", usage.vm_folders.size()},
            {"vms", usage.vm_folders}};
}

json event_json(const HostDatabase::Event& event) {
    return {{"id", event.id},
            {"time", event.time},
            {"vm", event.vm},
            {"kind", event.kind},
            {"message", event.message}};
}

}  // namespace

HostApi::HostApi(HostDatabase& database, VmInventory& inventory, VmmSupervisor& supervisor,
                 TaskManager& tasks, NetworkRoutes& network, Listener listener)
    : database_(database),
      inventory_(inventory),
      supervisor_(supervisor),
      tasks_(tasks),
      network_(network),
      listener_(std::move(listener)) {}

void HostApi::require_off(const std::string& vm) {
    inventory_.get(vm);  // 404 first
    if (supervisor_.running(vm)) {
        refuse(409, "VM '{}' is running: stop it first", vm);
    }
    if (tasks_.busy(vm)) {
        refuse(409, "VM '{}' is busy with a task (vireo task list): wait for it or cancel it", vm);
    }
}

ApiRole HostApi::authorize(const ApiRequest& request) {
    if (request.local) {
        return ApiRole::admin;
    }
    if (!request.bearer) {
        refuse(401,
               "a token is needed: send 'Authorization: Bearer TOKEN' (made on the host with "
               "vireo token create)");
    }
    std::optional<HostDatabase::Token> token =
        database_.find_token_by_hash(token_hash(*request.bearer));
    if (!token) {
        refuse(401, "the token is not valid here (unknown, or deleted)");
    }
    ApiRole role = parse_role(token->role).value_or(ApiRole::read_only);
    if (role == ApiRole::read_only && request.method != "GET") {
        refuse(403, "the token '{}' is read-only: {} /{} needs an admin token", token->name,
               request.method, fmt::join(request.path, "/"));
    }
    return role;
}

ApiResponse HostApi::handle(const ApiRequest& request) {
    ApiRole role = authorize(request);
    const std::vector<std::string>& path = request.path;
    if (path.size() == 1 && path[0] == "metrics" && request.method == "GET") {
        return metrics();
    }
    if (path.size() < 2 || path[0] != "v1") {
        refuse_unknown_path(request);
    }
    if (path[1] == "host" && path.size() == 2 && request.method == "GET") {
        return host();
    }
    if (path[1] == "vms" && path.size() == 2) {
        return vms(request);
    }
    if (path[1] == "vms" && path.size() == 3) {
        return vm(request);
    }
    if (path[1] == "vms" && path.size() == 4 && path[3] == "console" && request.method == "GET") {
        return console(request);
    }
    if (path[1] == "vms" && path.size() >= 4 && path[3] == "snapshots") {
        return snapshots(request);
    }
    if (path[1] == "vms" && path.size() == 4 && path[3] == "clone" && request.method == "POST") {
        return clone(request);
    }
    if (path[1] == "vms" && path.size() == 4 && path[3] == "rename" && request.method == "POST") {
        require_off(path[2]);
        std::string name = string_fields(request, {{"name", "the VM's new name"}})[0];
        return {200, describe(inventory_.rename(path[2], name), false)};
    }
    if (path[1] == "vms" && path.size() >= 4 && path[3] == "disks") {
        return disks(request);
    }
    if (path[1] == "vms" && path.size() == 4 && path[3] == "template" && request.method == "POST") {
        require_off(path[2]);
        return {200, describe(inventory_.make_template(path[2]), false)};
    }
    if (path[1] == "vms" && path.size() == 4 && request.method == "POST") {
        return power(request, path[3]);
    }
    if (path[1] == "tasks") {
        return tasks(request);
    }
    if (path[1] == "datastores" && path.size() <= 3) {
        return datastores(request);
    }
    if (NetworkRoutes::serves(request)) {
        return network_.handle(request);
    }
    if (path[1] == "events" && path.size() == 2 && request.method == "GET") {
        return events(request);
    }
    if (path[1] == "tokens" && path.size() <= 3) {
        if (role != ApiRole::admin) {
            refuse(403, "only an admin token sees or changes tokens");
        }
        return tokens(request);
    }
    refuse_unknown_path(request);
}

std::unique_ptr<WebSocketSession> HostApi::open_websocket(const ApiRequest& request) {
    const std::vector<std::string>& path = request.path;
    if (path.size() != 4 || path[0] != "v1" || path[1] != "vms" || path[3] != "console") {
        refuse(404, "no WebSocket at /{} (the console is at /v1/vms/NAME/console)",
               fmt::join(path, "/"));
    }
    if (authorize(request) != ApiRole::admin) {
        refuse(403, "the console types into the VM: it needs an admin token");
    }
    VmEntry vm = inventory_.get(path[2]);
    if (!supervisor_.running(vm.name)) {
        refuse(409, "VM '{}' is off: start it to reach its console", vm.name);
    }
    // By default the last few lines, so that the prompt shows at once.
    constexpr int64_t kRecentBytes = 4096;
    std::error_code error;
    auto size = static_cast<int64_t>(std::filesystem::file_size(vm.console_log(), error));
    int64_t offset = query_number(request, "offset",
                                  error ? 0 : std::max<int64_t>(0, size - kRecentBytes), INT64_MAX);
    return std::make_unique<ConsoleSession>(supervisor_, vm.name, vm.console_log(), offset);
}

json HostApi::describe(const VmEntry& vm, bool with_runtime) {
    json entry = {
        {"name", vm.name},       {"datastore", vm.datastore},  {"folder", vm.folder.string()},
        {"created", vm.created}, {"template", vm.is_template}, {"state", "off"}};
    if (std::optional<json> info = supervisor_.info(vm.name)) {
        entry["state"] = info->value("state", std::string("running"));
        entry["pid"] = (*info)["pid"];
        if (with_runtime) {
            entry["runtime"] = *info;
        }
    }
    return entry;
}

ApiResponse HostApi::host() {
    char name[256] = {};
    ::gethostname(name, sizeof(name) - 1);
    size_t running = 0;
    std::vector<VmEntry> vms = inventory_.list();
    for (const VmEntry& vm : vms) {
        running += supervisor_.running(vm.name) ? 1 : 0;
    }
    return {200,
            {{"hostname", name},
             {"version", "0.1"},
             {"vms", vms.size()},
             {"vms_running", running},
             {"kvm", ::access("/dev/kvm", R_OK | W_OK) == 0},
             {"api",
              {{"unix", true},
               {"tls", listener_.address.empty() ? json(nullptr) : json(listener_.address)},
               {"tls_fingerprint", listener_.tls_fingerprint.empty()
                                       ? json(nullptr)
                                       : json(listener_.tls_fingerprint)}}}}};
}

ApiResponse HostApi::vms(const ApiRequest& request) {
    if (request.method == "GET") {
        json list = json::array();
        for (const VmEntry& vm : inventory_.list()) {
            list.push_back(describe(vm, false));
        }
        return {200, {{"vms", list}}};
    }
    if (request.method != "POST") {
        refuse(405, "{} is not allowed on /v1/vms (GET lists, POST creates)", request.method);
    }
    json body = body_object(request);
    std::string name, datastore;
    json definition;
    try {
        const std::string source = "body";  // the reader keeps a reference
        ObjectReader reader(body, "", source);
        name = reader.required_string("name", "the VM's name");
        datastore = reader.required_string("datastore", "the datastore to create it on");
        const json* found = reader.find("definition");
        if (found == nullptr) {
            reader.error("definition", "missing (the VM definition, as its vm.json holds it)");
        }
        definition = *found;
        reader.refuse_unknown_fields();
    } catch (const ApiError&) {
        throw;
    } catch (const Error& error) {
        refuse(400, "{}", error.what());
    }
    return {201, describe(inventory_.create(name, datastore, definition), false)};
}

ApiResponse HostApi::vm(const ApiRequest& request) {
    const std::string& name = request.path[2];
    if (request.method == "GET") {
        return {200, describe(inventory_.get(name), true)};
    }
    if (request.method == "PATCH") {
        require_off(name);
        return {200, describe(inventory_.reconfigure(name, body_object(request)), false)};
    }
    if (request.method == "DELETE") {
        bool files = query_flag(request, "files");
        require_off(name);
        inventory_.remove(name, files);
        return {200, {{"deleted", name}, {"files", files}}};
    }
    refuse(405, "{} is not allowed on a VM (GET shows it, PATCH changes it, DELETE removes it)",
           request.method);
}

ApiResponse HostApi::power(const ApiRequest& request, const std::string& action) {
    const std::string& name = request.path[2];
    VmEntry vm = inventory_.get(name);
    if (action == "start") {
        if (vm.is_template) {
            refuse(409, "VM '{}' is a template: clone it, and start the clone", name);
        }
        if (tasks_.busy(name)) {
            refuse(409, "VM '{}' is busy with a task (vireo task list)", name);
        }
        supervisor_.start(vm, [&] { database_.add_event(name, "vm.started", "powered on"); });
    } else if (action == "stop") {
        supervisor_.stop(name);
    } else if (action == "reset") {
        // A hard reset: the VMM ends and a new one boots the VM afresh.
        supervisor_.stop(name);
        supervisor_.start(
            vm, [&] { database_.add_event(name, "vm.reset", "reset (powered off and on)"); });
    } else if (action == "shutdown") {
        supervisor_.shutdown(name);
        database_.add_event(name, "vm.shutdown-requested", "ACPI power button pressed");
    } else if (action == "pause") {
        supervisor_.pause(name);
        database_.add_event(name, "vm.paused", "paused");
    } else if (action == "resume") {
        supervisor_.resume(name);
        database_.add_event(name, "vm.resumed", "resumed");
    } else {
        refuse(404, "no such operation on a VM: '{}' (start, stop, reset, shutdown, pause, resume)",
               action);
    }
    return {200, describe(vm, false)};
}

// The console log from `offset` on, at most kConsoleChunk bytes a call: a
// client follows the console by asking again from the offset it got back.
ApiResponse HostApi::console(const ApiRequest& request) {
    constexpr int64_t kConsoleChunk = 64 * 1024;
    VmEntry vm = inventory_.get(request.path[2]);
    auto offset = query_number(request, "offset", 0, INT64_MAX);
    std::string text;
    std::ifstream log(vm.console_log(), std::ios::binary);
    if (log) {
        log.seekg(0, std::ios::end);
        int64_t size = log.tellg();
        if (offset > size) {
            offset = size;  // the log was cut (a new power-on): from its end
        }
        text.resize(static_cast<size_t>(std::min(kConsoleChunk, size - offset)));
        log.seekg(offset);
        log.read(text.data(), static_cast<std::streamsize>(text.size()));
    }
    bool running = supervisor_.running(vm.name);
    return {200,
            {{"offset", offset + static_cast<int64_t>(text.size())},
             {"text", text},
             {"running", running}}};
}

// Prometheus' text format: per VM its power state, CPU time, memory and
// vNIC counters (the TAPs' own); per host the totals.
ApiResponse HostApi::metrics() {
    struct Family {
        const char* name;
        const char* type;
        const char* help;
        std::string samples;
    };
    Family running{"vireo_vm_running", "gauge", "1 while the VM is on", ""};
    Family cpu{"vireo_vm_cpu_seconds_total", "counter", "CPU time of the VM's VMM (vCPUs included)",
               ""};
    Family vcpus{"vireo_vm_vcpus", "gauge", "vCPUs of a running VM", ""};
    Family memory{"vireo_vm_memory_bytes", "gauge", "guest RAM of a running VM", ""};
    Family resident{"vireo_vm_memory_resident_bytes", "gauge",
                    "guest RAM backed by host memory now", ""};
    Family nic_bytes{"vireo_vm_nic_bytes_total", "counter",
                     "bytes through a vNIC (direction: from or to the guest)", ""};
    Family nic_packets{"vireo_vm_nic_packets_total", "counter", "frames through a vNIC", ""};
    Family disk_bytes{"vireo_vm_disk_bytes_total", "counter",
                      "bytes the guest read or wrote on a virtual disk (op: read, write)", ""};
    Family disk_ops{"vireo_vm_disk_ops_total", "counter",
                    "requests the guest completed on a virtual disk (op: read, write, flush)", ""};
    Family disk_failed{"vireo_vm_disk_failed_ops_total", "counter",
                       "requests on a virtual disk that completed with an error", ""};
    size_t vm_count = 0, running_count = 0;
    double cpu_total = 0;
    for (const VmEntry& vm : inventory_.list()) {
        ++vm_count;
        std::string label = fmt::format("vm=\"{}\"", vm.name);
        std::optional<json> info = supervisor_.info(vm.name);
        running.samples += fmt::format("vireo_vm_running{{{}}} {}\n", label, info ? 1 : 0);
        if (!info) {
            continue;
        }
        ++running_count;
        double seconds = process_cpu_seconds((*info)["pid"].get<pid_t>());
        cpu_total += seconds;
        cpu.samples += fmt::format("vireo_vm_cpu_seconds_total{{{}}} {:.2f}\n", label, seconds);
        vcpus.samples += fmt::format("vireo_vm_vcpus{{{}}} {}\n", label, info->value("vcpus", 0));
        memory.samples += fmt::format("vireo_vm_memory_bytes{{{}}} {}\n", label,
                                      info->value("memory_mib", uint64_t{0}) * 1024 * 1024);
        resident.samples += fmt::format("vireo_vm_memory_resident_bytes{{{}}} {}\n", label,
                                        info->value("memory_resident_bytes", uint64_t{0}));
        for (const json& disk : info->value("disks", json::array())) {
            std::string labels = fmt::format("{},disk=\"{}\"", label, disk.value("index", 0));
            for (const char* op : {"read", "write"}) {
                disk_bytes.samples +=
                    fmt::format("vireo_vm_disk_bytes_total{{{},op=\"{}\"}} {}\n", labels, op,
                                disk.value(fmt::format("{}_bytes", op), uint64_t{0}));
            }
            for (const char* op : {"read", "write", "flush"}) {
                disk_ops.samples +=
                    fmt::format("vireo_vm_disk_ops_total{{{},op=\"{}\"}} {}\n", labels, op,
                                disk.value(fmt::format("{}_ops", op), uint64_t{0}));
            }
            disk_failed.samples += fmt::format("vireo_vm_disk_failed_ops_total{{{}}} {}\n", labels,
                                               disk.value("failed_ops", uint64_t{0}));
        }
        for (const json& nic : info->value("nics", json::array())) {
            std::string tap = nic.value("tap", std::string());
            // The TAP's receive is the guest's transmit.
            for (auto [counter, direction] : {std::pair{"rx", "from_guest"}, {"tx", "to_guest"}}) {
                std::string labels = fmt::format("{},nic=\"{}\",direction=\"{}\"", label,
                                                 nic.value("index", 0), direction);
                nic_bytes.samples +=
                    fmt::format("vireo_vm_nic_bytes_total{{{}}} {}\n", labels,
                                tap_counter(tap, fmt::format("{}_bytes", counter)));
                nic_packets.samples +=
                    fmt::format("vireo_vm_nic_packets_total{{{}}} {}\n", labels,
                                tap_counter(tap, fmt::format("{}_packets", counter)));
            }
        }
    }
    std::string text;
    for (const Family& family :
         {running, cpu, vcpus, memory, resident, disk_bytes, disk_ops, disk_failed, nic_bytes,
          nic_packets,
          Family{"vireo_host_vms", "gauge", "VMs registered on this host",
                 fmt::format("vireo_host_vms {}\n", vm_count)},
          Family{"vireo_host_vms_running", "gauge", "VMs on",
                 fmt::format("vireo_host_vms_running {}\n", running_count)},
          Family{"vireo_host_vm_cpu_seconds_total", "counter", "CPU time of the running VMs",
                 fmt::format("vireo_host_vm_cpu_seconds_total {:.2f}\n", cpu_total)}}) {
        text += fmt::format("# HELP {} {}\n# TYPE {} {}\n{}", family.name, family.help, family.name,
                            family.type, family.samples);
    }
    return ApiResponse::plain(text);
}

json task_json(const HostDatabase::Task& task) {
    json entry = {{"id", task.id},          {"kind", task.kind},         {"vm", task.vm},
                  {"state", task.state},    {"progress", task.progress}, {"message", task.message},
                  {"created", task.created}};
    entry["finished"] = task.finished.empty() ? json(nullptr) : json(task.finished);
    return entry;
}

ApiResponse HostApi::disks(const ApiRequest& request) {
    const std::vector<std::string>& path = request.path;
    require_off(path[2]);
    if (inventory_.get(path[2]).is_template) {
        refuse(409, "VM '{}' is a template: its disks never change", path[2]);
    }
    if (path.size() == 4 && request.method == "POST") {
        json body = body_object(request);
        uint64_t size = 0;
        ImageFormat format = ImageFormat::qcow2;
        try {
            const std::string where = "body";
            ObjectReader reader(body, "", where);
            const json* found = reader.find("size");
            if (found == nullptr) {
                reader.error("size", "missing (bytes, or a size such as \"10G\")");
            } else if (found->is_number_unsigned()) {
                size = found->get<uint64_t>();
            } else if (found->is_string()) {
                size = parse_byte_size(found->get<std::string>(), "size");
            } else {
                reader.error("size", "must be a number of bytes or a size such as \"10G\"");
            }
            std::string text = reader.string("format").value_or("qcow2");
            if (text != "qcow2" && text != "raw") {
                reader.error("format", "'{}' is neither qcow2 nor raw", text);
            }
            format = text == "raw" ? ImageFormat::raw : ImageFormat::qcow2;
            reader.refuse_unknown_fields();
        } catch (const Error& error) {
            refuse(400, "{}", error.what());
        }
        return {201, describe(inventory_.add_disk(path[2], size, format), false)};
    }
    if (path.size() < 5) {
        refuse(405, "{} is not allowed on /{}", request.method, fmt::join(path, "/"));
    }
    size_t index = 0;
    auto [end, error] = std::from_chars(path[4].data(), path[4].data() + path[4].size(), index);
    if (error != std::errc() || end != path[4].data() + path[4].size()) {
        refuse(404, "no disk '{}': disks are numbered from 0", path[4]);
    }
    if (path.size() == 5 && request.method == "DELETE") {
        return {200, describe(inventory_.remove_disk(path[2], index, query_flag(request, "files")),
                              false)};
    }
    if (path.size() == 6 && path[5] == "convert" && request.method == "POST") {
        std::string text = string_fields(request, {{"format", "qcow2 or raw"}})[0];
        ImageFormat format = ImageFormat::qcow2;
        try {
            format = parse_image_format(text, "format");
        } catch (const Error& problem) {
            refuse(400, "{}", problem.what());
        }
        VmInventory::ConvertPlan plan = inventory_.plan_convert(path[2], index, format);
        HostDatabase::Task task =
            tasks_.start("vm.disk-convert", plan.vm, [this, plan](TaskProgress& progress) {
                inventory_.convert_disk(plan, [&](double fraction) { progress.report(fraction); });
                return fmt::format("disks[{}] of '{}' is {} now: {}", plan.index, plan.vm,
                                   format_name(plan.format), plan.target.string());
            });
        return {202, task_json(task)};
    }
    refuse(405, "{} is not allowed on /{}", request.method, fmt::join(path, "/"));
}

ApiResponse HostApi::clone(const ApiRequest& request) {
    VmEntry source = inventory_.get(request.path[2]);
    json body = body_object(request);
    std::string name, datastore;
    bool linked = false;
    try {
        const std::string where = "body";
        ObjectReader reader(body, "", where);
        name = reader.required_string("name", "the clone's name");
        datastore = reader.string("datastore").value_or(source.datastore);
        linked = reader.boolean("linked").value_or(false);
        reader.refuse_unknown_fields();
    } catch (const Error& error) {
        refuse(400, "{}", error.what());
    }
    require_off(source.name);
    VmInventory::ClonePlan plan = inventory_.plan_clone(source.name, name, datastore, linked);
    HostDatabase::Task task =
        tasks_.start("vm.clone", source.name, [this, plan](TaskProgress& progress) {
            VmEntry made =
                inventory_.clone(plan, [&](double fraction) { progress.report(fraction); });
            return fmt::format("'{}' is a {} clone of '{}' in {}", made.name,
                               plan.linked ? "linked" : "full", plan.source.name,
                               made.folder.string());
        });
    return {202, task_json(task)};
}

ApiResponse HostApi::snapshots(const ApiRequest& request) {
    const std::vector<std::string>& path = request.path;
    VmEntry vm = inventory_.get(path[2]);
    if (path.size() == 4 && request.method == "GET") {
        json list = json::array();
        for (const VmSnapshot& snapshot : list_snapshots(vm, supervisor_.running(vm.name))) {
            list.push_back({{"name", snapshot.name},
                            {"created", snapshot.created},
                            {"disks", snapshot.disks}});
        }
        return {200, {{"snapshots", list}}};
    }
    if (path.size() == 4 && request.method == "POST") {
        std::string name = string_fields(request, {{"name", "the snapshot's name"}})[0];
        try {
            check_snapshot_name(name);
        } catch (const Error& error) {
            refuse(400, "{}", error.what());
        }
        if (tasks_.busy(vm.name)) {
            refuse(409, "VM '{}' is busy with a task (vireo task list): wait for it", vm.name);
        }
        if (vm.is_template) {
            refuse(409, "VM '{}' is a template: its disks never change", vm.name);
        }
        // A running VMM owns its disks' metadata: it takes the snapshot itself.
        json made;
        if (supervisor_.running(vm.name)) {
            made = supervisor_.snapshot(vm.name, name);
        } else {
            VmSnapshot offline = create_snapshot(vm, name);
            made = {{"name", offline.name}, {"created", offline.created}, {"disks", offline.disks}};
        }
        double paused_ms = made.value("paused_ms", 0.0);
        std::string paused =
            paused_ms > 0 ? fmt::format(", the VM paused {:.0f} ms", paused_ms) : "";
        database_.add_event(vm.name, "vm.snapshot-created",
                            fmt::format("snapshot '{}' of {} disk(s){}", name,
                                        made["disks"].get<size_t>(), paused));
        return {201, made};
    }
    require_off(vm.name);  // a running VMM owns its disks' metadata
    if (vm.is_template) {
        refuse(409, "VM '{}' is a template: its disks never change", vm.name);
    }
    if (path.size() == 6 && path[5] == "revert" && request.method == "POST") {
        revert_snapshot(vm, path[4]);
        database_.add_event(vm.name, "vm.snapshot-reverted",
                            fmt::format("reverted to snapshot '{}'", path[4]));
        return {200, describe(vm, false)};
    }
    if (path.size() == 5 && request.method == "DELETE") {
        std::vector<VmSnapshot> known = list_snapshots(vm, false);
        std::string snapshot = path[4];
        if (std::none_of(known.begin(), known.end(),
                         [&](const VmSnapshot& s) { return s.name == snapshot; })) {
            refuse(404, "VM '{}': no snapshot '{}'", vm.name, snapshot);
        }
        HostDatabase::Task task =
            tasks_.start("vm.snapshot-delete", vm.name, [vm, snapshot](TaskProgress& progress) {
                delete_snapshot(vm, snapshot, [&](double fraction) { progress.report(fraction); });
                return fmt::format("snapshot '{}' deleted", snapshot);
            });
        return {202, task_json(task)};
    }
    refuse(405, "{} is not allowed on /{}", request.method, fmt::join(path, "/"));
}

ApiResponse HostApi::tasks(const ApiRequest& request) {
    const std::vector<std::string>& path = request.path;
    if (path.size() == 2 && request.method == "GET") {
        json list = json::array();
        for (const HostDatabase::Task& task : tasks_.list()) {
            list.push_back(task_json(task));
        }
        return {200, {{"tasks", list}}};
    }
    if (path.size() < 3 || path.size() > 4) {
        refuse_unknown_path(request);
    }
    int64_t id = 0;
    auto [end, error] = std::from_chars(path[2].data(), path[2].data() + path[2].size(), id);
    if (error != std::errc() || end != path[2].data() + path[2].size()) {
        refuse(404, "no task '{}' (tasks are numbered)", path[2]);
    }
    if (path.size() == 3 && request.method == "GET") {
        return {200, task_json(tasks_.get(id))};
    }
    if (path.size() == 4 && path[3] == "cancel" && request.method == "POST") {
        return {200, task_json(tasks_.cancel(id))};
    }
    refuse(405, "{} is not allowed on /{}", request.method, fmt::join(path, "/"));
}

ApiResponse HostApi::datastores(const ApiRequest& request) {
    DatastoreRegistry& registry = inventory_.datastores();
    if (request.path.size() == 3) {
        const std::string& name = request.path[2];
        if (request.method == "GET") {
            std::optional<Datastore> found = registry.find(name);
            if (!found) {
                refuse(404, "no datastore named '{}' (vireo datastore list)", name);
            }
            return {200, datastore_json(*found)};
        }
        if (request.method != "DELETE") {
            refuse(405, "{} is not allowed on a datastore (GET shows it, DELETE forgets it)",
                   request.method);
        }
        Datastore removed = inventory_.remove_datastore(name, query_flag(request, "force"));
        database_.add_event("", "datastore.removed",
                            fmt::format("datastore '{}' ({}) forgotten; its files are untouched",
                                        name, removed.path.string()));
        return {200, {{"name", removed.name}, {"path", removed.path.string()}}};
    }
    if (request.method == "GET") {
        json list = json::array();
        for (const Datastore& datastore : registry.list()) {
            list.push_back(datastore_json(datastore));
        }
        return {200, {{"datastores", list}}};
    }
    if (request.method != "POST") {
        refuse(405, "{} is not allowed on /v1/datastores (GET lists, POST adds one)",
               request.method);
    }
    std::vector<std::string> fields = string_fields(
        request, {{"name", "the datastore's name"}, {"path", "an existing directory on the host"}});
    const std::string& name = fields[0];
    Datastore added = registry.add(name, fields[1]);
    database_.add_event("", "datastore.added",
                        fmt::format("datastore '{}' added: {}", name, added.path.string()));
    return {201, datastore_json(added)};
}

ApiResponse HostApi::tokens(const ApiRequest& request) {
    if (request.path.size() == 3) {
        if (request.method != "DELETE") {
            refuse(405, "{} is not allowed on a token (DELETE revokes it)", request.method);
        }
        if (!database_.delete_token(request.path[2])) {
            refuse(404, "no token named '{}'", request.path[2]);
        }
        database_.add_event("", "token.deleted",
                            fmt::format("token '{}' revoked", request.path[2]));
        return {200, {{"deleted", request.path[2]}}};
    }
    if (request.method == "GET") {
        json list = json::array();
        for (const HostDatabase::Token& token : database_.tokens()) {
            list.push_back(
                {{"name", token.name}, {"role", token.role}, {"created", token.created}});
        }
        return {200, {{"tokens", list}}};
    }
    if (request.method != "POST") {
        refuse(405, "{} is not allowed on /v1/tokens (GET lists, POST makes one)", request.method);
    }
    std::vector<std::string> fields =
        string_fields(request, {{"name", "the token's name"}, {"role", "admin or read-only"}});
    const std::string& name = fields[0];
    const std::string& role_text = fields[1];
    if (auto problem = VmInventory::name_problem(name)) {
        refuse(400,
               "name: '{}' is not a token name: 1 to 64 of A-Z a-z 0-9 - _ ., starting "
               "with a letter or digit",
               name);
    }
    std::optional<ApiRole> role = parse_role(role_text);
    if (!role) {
        refuse(400, "role: '{}' is neither admin nor read-only", role_text);
    }
    std::string secret = new_token_secret();
    HostDatabase::Token token{name, std::string(role_name(*role)), utc_now()};
    try {
        database_.transaction([&] {
            database_.insert_token(token, token_hash(secret));
            database_.add_event("", "token.created",
                                fmt::format("token '{}' ({}) made", name, token.role));
        });
    } catch (const Error& error) {
        refuse(409, "{}", error.what());
    }
    // The secret is shown this once: the host keeps only its hash.
    return {201,
            {{"name", name}, {"role", token.role}, {"created", token.created}, {"token", secret}}};
}

ApiResponse HostApi::events(const ApiRequest& request) {
    int64_t after = query_number(request, "after", 0, INT64_MAX);
    auto limit = static_cast<size_t>(query_number(request, "limit", 100, 1000));
    json list = json::array();
    for (const HostDatabase::Event& event : database_.events(after, limit)) {
        list.push_back(event_json(event));
    }
    return {200, {{"events", list}}};
}

}  // namespace vireo
