#include "cli/vm_command.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include <termios.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/byte_size.h"
#include "base/error.h"
#include "cli/api_client.h"

namespace vireo::cli {
namespace {

using nlohmann::json;

struct VmOptions {
    ApiTarget target;
    bool json = false;
    std::string name;
    // create
    std::string datastore;
    std::string definition;
    std::string kernel;
    std::string initrd;
    std::string cmdline;
    unsigned cpus = 0;
    std::string memory;
    // delete
    bool files = false;
    // console
    bool log = false;
    bool follow = false;
    // event list
    int64_t after = 0;
    // token create
    std::string role;
    // clone, snapshot, task
    std::string other;  // the clone's or the snapshot's name
    bool linked = false;
    bool no_wait = false;
    int64_t task = 0;
    // vm disk
    std::string disk_size;
    std::string disk_format = "qcow2";
    size_t disk_index = 0;
};

ApiClient client(const VmOptions& options) {
    return ApiClient(options.target);
}

void print_vm(const json& vm) {
    std::cout << fmt::format("{}: {} (datastore {}, folder {})\n", vm["name"].get<std::string>(),
                             vm["state"].get<std::string>(), vm["datastore"].get<std::string>(),
                             vm["folder"].get<std::string>());
}

// --kernel, --initrd, --cmdline, --cpus and --memory, where given, into a
// definition or a change of one.
void lay_options_over(const VmOptions& options, json& document) {
    if (!options.kernel.empty()) {
        document["boot"]["kernel"] = std::filesystem::absolute(options.kernel).string();
    }
    if (!options.initrd.empty()) {
        document["boot"]["initrd"] = std::filesystem::absolute(options.initrd).string();
    }
    if (!options.cmdline.empty()) {
        document["boot"]["cmdline"] = options.cmdline;
    }
    if (options.cpus != 0) {
        document["vcpus"] = options.cpus;
    }
    if (!options.memory.empty()) {
        document["memory_mib"] = parse_byte_size(options.memory, "--memory") / MiB;
    }
}

// The definition from --definition, with --kernel, --cpus... laid over it.
json definition_of(const VmOptions& options) {
    json definition = json::object();
    if (!options.definition.empty()) {
        std::ifstream file(options.definition);
        if (!file) {
            fail("--definition {}: cannot read it", options.definition);
        }
        definition = json::parse(file, nullptr, false);
        if (!definition.is_object()) {
            fail("--definition {}: not a JSON object (a VM definition, docs/vmm.md)",
                 options.definition);
        }
    }
    lay_options_over(options, definition);
    if (!definition.contains("boot")) {
        fail("vm create {}: give --definition FILE or at least --kernel", options.name);
    }
    return definition;
}

int create(const VmOptions& options) {
    json body = {{"name", options.name},
                 {"datastore", options.datastore},
                 {"definition", definition_of(options)}};
    json vm = client(options).call("POST", "/v1/vms", &body);
    if (options.json) {
        std::cout << vm.dump() << std::endl;
    } else {
        std::cout << "created ";
        print_vm(vm);
    }
    return 0;
}

int list(const VmOptions& options) {
    json answer = client(options).call("GET", "/v1/vms");
    if (options.json) {
        std::cout << answer["vms"].dump() << std::endl;
        return 0;
    }
    std::cout << fmt::format("{:<24} {:<9} {:<16} {}\n", "NAME", "STATE", "DATASTORE", "FOLDER");
    for (const json& vm : answer["vms"]) {
        std::cout << fmt::format("{:<24} {:<9} {:<16} {}\n", vm["name"].get<std::string>(),
                                 vm["state"].get<std::string>(), vm["datastore"].get<std::string>(),
                                 vm["folder"].get<std::string>());
    }
    return 0;
}

int show(const VmOptions& options) {
    json vm = client(options).call("GET", "/v1/vms/" + options.name);
    if (options.json) {
        std::cout << vm.dump() << std::endl;
        return 0;
    }
    print_vm(vm);
    std::cout << fmt::format("  created {}\n", vm["created"].get<std::string>());
    if (vm.contains("runtime")) {
        const json& runtime = vm["runtime"];
        std::cout << fmt::format("  pid {}, {} vCPUs, {} MiB\n", runtime.value("pid", 0),
                                 runtime.value("vcpus", 0), runtime.value("memory_mib", 0));
    }
    return 0;
}

int power(const VmOptions& options, const std::string& action) {
    json vm = client(options).call("POST", fmt::format("/v1/vms/{}/{}", options.name, action));
    if (options.json) {
        std::cout << vm.dump() << std::endl;
    } else {
        print_vm(vm);
    }
    return 0;
}

int reconfigure(const VmOptions& options) {
    // Only the boot fields given: the host merges them into the definition.
    json changes = json::object();
    lay_options_over(options, changes);
    if (changes.empty()) {
        fail(
            "vm reconfigure {}: nothing to change (--cpus, --memory, --kernel, --initrd, "
            "--cmdline)",
            options.name);
    }
    json vm = client(options).call("PATCH", "/v1/vms/" + options.name, &changes);
    if (options.json) {
        std::cout << vm.dump() << std::endl;
    } else {
        std::cout << fmt::format("VM '{}' changed: {}\n", options.name, changes.dump());
    }
    return 0;
}

int remove(const VmOptions& options) {
    json answer = client(options).call(
        "DELETE", fmt::format("/v1/vms/{}{}", options.name, options.files ? "?files=true" : ""));
    if (options.json) {
        std::cout << answer.dump() << std::endl;
    } else {
        std::cout << fmt::format(
            "VM '{}' {}\n", options.name,
            options.files ? "deleted with its folder" : "unregistered (its folder is kept)");
    }
    return 0;
}

// --log: prints the console log from the start; with --follow, goes on until
// the VM is off.
int console_log(const VmOptions& options) {
    ApiClient api = client(options);
    int64_t offset = 0;
    while (true) {
        json chunk =
            api.call("GET", fmt::format("/v1/vms/{}/console?offset={}", options.name, offset));
        std::string text = chunk["text"];
        std::cout << text << std::flush;
        offset = chunk["offset"];
        if (!options.follow || (text.empty() && !chunk["running"].get<bool>())) {
            return 0;
        }
        if (text.empty()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
}

// Puts a terminal into raw mode (every key goes to the guest) for its life.
class RawTerminal {
public:
    explicit RawTerminal(int fd) : fd_(fd) {
        if (::isatty(fd_) && ::tcgetattr(fd_, &saved_) == 0) {
            termios raw = saved_;
            ::cfmakeraw(&raw);
            raw.c_oflag |= OPOST;
            active_ = ::tcsetattr(fd_, TCSANOW, &raw) == 0;
        }
    }
    ~RawTerminal() {
        if (active_) {
            ::tcsetattr(fd_, TCSANOW, &saved_);
        }
    }
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;
    bool active() const { return active_; }

private:
    int fd_;
    termios saved_{};
    bool active_ = false;
};

// The VM's serial console, both ways, over a WebSocket: keys go to the guest,
// its output comes here, until the VM is off or Ctrl-] (as in telnet and
// virsh console) detaches. Input that is not a terminal is sent as it comes.
int console(const VmOptions& options) {
    if (options.log || options.follow) {
        return console_log(options);
    }
    constexpr char kEscapeKey = 0x1d;
    ApiClient api = client(options);
    // Asked first for a plain answer when it is not there: Beast does not
    // pass on why a WebSocket was declined.
    json vm = api.call("GET", "/v1/vms/" + options.name);
    if (vm["state"] == "off") {
        fail("VM '{}' is off: start it to reach its console (--log shows its last one)",
             options.name);
    }
    bool detached = false;
    {
        RawTerminal terminal(STDIN_FILENO);
        if (terminal.active()) {
            std::cerr << fmt::format("Connected to {}'s console (Ctrl-] detaches)\r\n",
                                     options.name);
        }
        api.websocket(
            fmt::format("/v1/vms/{}/console", options.name), STDIN_FILENO,
            [&](std::string_view typed, bool& stop) {
                size_t escape = typed.find(kEscapeKey);
                stop = detached = escape != std::string_view::npos;
                return std::string(typed.substr(0, escape));
            },
            [](std::string_view output) { std::cout << output << std::flush; });
    }
    if (detached) {
        std::cerr << fmt::format("\nDetached from {}'s console; it keeps running\n", options.name);
    }
    return 0;
}

int events(const VmOptions& options) {
    json answer =
        client(options).call("GET", fmt::format("/v1/events?after={}&limit=1000", options.after));
    if (options.json) {
        std::cout << answer["events"].dump() << std::endl;
        return 0;
    }
    for (const json& event : answer["events"]) {
        std::cout << fmt::format("{:>6} {} {:<22} {:<16} {}\n", event["id"].get<int64_t>(),
                                 event["time"].get<std::string>(), event["kind"].get<std::string>(),
                                 event["vm"].get<std::string>(),
                                 event["message"].get<std::string>());
    }
    return 0;
}

void print_task(const json& task) {
    std::cout << fmt::format("task {} ({} of '{}'): {} {:.0f}%{}\n", task["id"].get<int64_t>(),
                             task["kind"].get<std::string>(), task["vm"].get<std::string>(),
                             task["state"].get<std::string>(), 100 * task["progress"].get<double>(),
                             task["message"].get<std::string>().empty()
                                 ? ""
                                 : ": " + task["message"].get<std::string>());
}

// Follows a task until it ends, its progress on stderr when that is a
// terminal; exit status 0 when it succeeded, 2 when not (its reason printed).
int wait_for(const ApiClient& api, json task, bool as_json) {
    bool terminal = ::isatty(STDERR_FILENO);
    while (task["state"] == "running") {
        if (terminal) {
            std::cerr << fmt::format("\r{} of '{}': {:3.0f}%", task["kind"].get<std::string>(),
                                     task["vm"].get<std::string>(),
                                     100 * task["progress"].get<double>())
                      << std::flush;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        task = api.call("GET", fmt::format("/v1/tasks/{}", task["id"].get<int64_t>()));
    }
    if (terminal) {
        std::cerr << "\r\033[K" << std::flush;
    }
    if (as_json) {
        std::cout << task.dump() << std::endl;
    } else {
        print_task(task);
    }
    return task["state"] == "succeeded" ? 0 : 2;
}

int clone(const VmOptions& options) {
    json body = {{"name", options.other}, {"linked", options.linked}};
    if (!options.datastore.empty()) {
        body["datastore"] = options.datastore;
    }
    ApiClient api = client(options);
    json task = api.call("POST", fmt::format("/v1/vms/{}/clone", options.name), &body);
    if (options.no_wait) {
        options.json ? void(std::cout << task.dump() << std::endl) : print_task(task);
        return 0;
    }
    return wait_for(api, task, options.json);
}

int rename(const VmOptions& options) {
    json body = {{"name", options.other}};
    json vm = client(options).call("POST", fmt::format("/v1/vms/{}/rename", options.name), &body);
    if (options.json) {
        std::cout << vm.dump() << std::endl;
    } else {
        std::cout << fmt::format("VM '{}' is now '{}' (folder {})\n", options.name, options.other,
                                 vm["folder"].get<std::string>());
    }
    return 0;
}

int disk(const VmOptions& options, const std::string& action) {
    ApiClient api = client(options);
    json vm;
    if (action == "convert") {
        json body = {{"format", options.disk_format}};
        json task = api.call(
            "POST", fmt::format("/v1/vms/{}/disks/{}/convert", options.name, options.disk_index),
            &body);
        if (options.no_wait) {
            options.json ? void(std::cout << task.dump() << std::endl) : print_task(task);
            return 0;
        }
        return wait_for(api, task, options.json);
    }
    if (action == "add") {
        json body = {{"size", options.disk_size}, {"format", options.disk_format}};
        vm = api.call("POST", fmt::format("/v1/vms/{}/disks", options.name), &body);
    } else {
        vm =
            api.call("DELETE", fmt::format("/v1/vms/{}/disks/{}{}", options.name,
                                           options.disk_index, options.files ? "?files=true" : ""));
    }
    if (options.json) {
        std::cout << vm.dump() << std::endl;
    } else {
        std::cout << fmt::format("VM '{}': disk {}\n", options.name,
                                 action == "add" ? "added" : "removed");
    }
    return 0;
}

int make_template(const VmOptions& options) {
    json vm = client(options).call("POST", fmt::format("/v1/vms/{}/template", options.name));
    if (options.json) {
        std::cout << vm.dump() << std::endl;
    } else {
        std::cout << fmt::format("VM '{}' is a template: clone it (--linked shares its disks)\n",
                                 options.name);
    }
    return 0;
}

int snapshot(const VmOptions& options, const std::string& action) {
    ApiClient api = client(options);
    std::string base = fmt::format("/v1/vms/{}/snapshots", options.name);
    if (action == "list") {
        json answer = api.call("GET", base);
        if (options.json) {
            std::cout << answer["snapshots"].dump() << std::endl;
            return 0;
        }
        std::cout << fmt::format("{:<24} {:<21} {}\n", "NAME", "CREATED", "DISKS");
        for (const json& s : answer["snapshots"]) {
            std::cout << fmt::format("{:<24} {:<21} {}\n", s["name"].get<std::string>(),
                                     s["created"].get<std::string>(), s["disks"].get<int64_t>());
        }
        return 0;
    }
    if (action == "create") {
        json body = {{"name", options.other}};
        json made = api.call("POST", base, &body);
        if (options.json) {
            std::cout << made.dump() << std::endl;
            return 0;
        }
        std::cout << fmt::format(
            "snapshot '{}' of VM '{}' taken ({} disks{})\n", options.other, options.name,
            made["disks"].get<int64_t>(),
            made.value("paused_ms", 0.0) > 0
                ? fmt::format("; the VM paused {:.0f} ms", made["paused_ms"].get<double>())
                : "");
        return 0;
    }
    if (action == "revert") {
        json vm = api.call("POST", fmt::format("{}/{}/revert", base, options.other));
        options.json ? void(std::cout << vm.dump() << std::endl)
                     : void(std::cout << fmt::format("VM '{}' reverted to snapshot '{}'\n",
                                                     options.name, options.other));
        return 0;
    }
    json task = api.call("DELETE", fmt::format("{}/{}", base, options.other));
    return options.no_wait ? (print_task(task), 0) : wait_for(api, task, options.json);
}

int tasks(const VmOptions& options, const std::string& action) {
    ApiClient api = client(options);
    if (action == "list") {
        json answer = api.call("GET", "/v1/tasks");
        if (options.json) {
            std::cout << answer["tasks"].dump() << std::endl;
            return 0;
        }
        for (const json& task : answer["tasks"]) {
            print_task(task);
        }
        return 0;
    }
    std::string path = fmt::format("/v1/tasks/{}", options.task);
    if (action == "cancel") {
        api.call("POST", path + "/cancel");
    }
    return wait_for(api, api.call("GET", path), options.json);
}

int host_show(const VmOptions& options) {
    json host = client(options).call("GET", "/v1/host");
    if (options.json) {
        std::cout << host.dump() << std::endl;
        return 0;
    }
    std::cout << fmt::format(
        "{}: vireod {}, {} VMs ({} running), KVM {}\n", host["hostname"].get<std::string>(),
        host["version"].get<std::string>(), host["vms"].get<int64_t>(),
        host["vms_running"].get<int64_t>(), host["kvm"].get<bool>() ? "usable" : "not usable");
    const json& api = host["api"];
    if (api["tls"].is_string()) {
        std::cout << fmt::format("  API on https://{} (certificate SHA-256 {})\n",
                                 api["tls"].get<std::string>(),
                                 api["tls_fingerprint"].get<std::string>());
    }
    return 0;
}

int token_create(const VmOptions& options) {
    json body = {{"name", options.name}, {"role", options.role}};
    json token = client(options).call("POST", "/v1/tokens", &body);
    if (options.json) {
        std::cout << token.dump() << std::endl;
        return 0;
    }
    std::cout << fmt::format(
        "token '{}' ({}): {}\n(shown this once; the host keeps only its hash)\n",
        token["name"].get<std::string>(), token["role"].get<std::string>(),
        token["token"].get<std::string>());
    return 0;
}

int token_list(const VmOptions& options) {
    json answer = client(options).call("GET", "/v1/tokens");
    if (options.json) {
        std::cout << answer["tokens"].dump() << std::endl;
        return 0;
    }
    std::cout << fmt::format("{:<24} {:<10} {}\n", "NAME", "ROLE", "CREATED");
    for (const json& token : answer["tokens"]) {
        std::cout << fmt::format("{:<24} {:<10} {}\n", token["name"].get<std::string>(),
                                 token["role"].get<std::string>(),
                                 token["created"].get<std::string>());
    }
    return 0;
}

int token_delete(const VmOptions& options) {
    json answer = client(options).call("DELETE", "/v1/tokens/" + options.name);
    if (options.json) {
        std::cout << answer.dump() << std::endl;
    } else {
        std::cout << fmt::format("token '{}' revoked\n", options.name);
    }
    return 0;
}

// The options every command against vireod takes.
void common(CLI::App* command, const std::shared_ptr<VmOptions>& options) {
    add_target_options(command, options->target);
    command->add_flag("--json", options->json, "print the answer as JSON");
}

void add_console_command(CLI::App* parent, const std::shared_ptr<VmOptions>& options) {
    CLI::App* command =
        parent->add_subcommand("console", "The VM's serial console, interactive (Ctrl-] detaches)");
    command->add_option("name", options->name, "the VM")->required();
    command->add_flag("--log", options->log,
                      "print its console log from the start instead (read-only)");
    command->add_flag("--follow,-f", options->follow,
                      "print its console log and go on until the VM is off (read-only)");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(console(*options)); });
}

}  // namespace

void add_vm_commands(CLI::App& app) {
    auto options = std::make_shared<VmOptions>();
    CLI::App* vm = app.add_subcommand("vm", "The host's VMs, through vireod");
    vm->require_subcommand(1);

    CLI::App* command = vm->add_subcommand("create", "Create a VM folder on a datastore");
    command->add_option("name", options->name, "the VM's name (its folder's)")->required();
    command->add_option("--datastore", options->datastore, "where its folder goes")->required();
    command
        ->add_option("--definition", options->definition,
                     "a VM definition (JSON, docs/vmm.md) to start from")
        ->type_name("FILE");
    command->add_option("--kernel", options->kernel, "the guest kernel")->type_name("FILE");
    command->add_option("--initrd", options->initrd, "an initramfs")->type_name("FILE");
    command->add_option("--cmdline", options->cmdline, "the kernel's command line");
    command->add_option("--cpus", options->cpus, "vCPUs")->check(CLI::Range(1, 64));
    command->add_option("--memory", options->memory, "RAM, as 512M or 2G");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(create(*options)); });

    command = vm->add_subcommand("list", "Every VM of the host and its power state");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(list(*options)); });

    command = vm->add_subcommand("show", "One VM, and what its VMM reports while it runs");
    command->add_option("name", options->name, "the VM")->required();
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(show(*options)); });

    for (const auto& [action, help] :
         {std::pair{"start", "Power the VM on"},
          std::pair{"stop", "Power the VM off at once (hard)"},
          std::pair{"reset", "Reset the VM (hard: powered off and on again)"},
          std::pair{"shutdown", "Press the VM's ACPI power button (the guest shuts down)"},
          std::pair{"pause", "Stop running the VM's vCPUs"},
          std::pair{"resume", "Run a paused VM's vCPUs again"}}) {
        command = vm->add_subcommand(action, help);
        command->add_option("name", options->name, "the VM")->required();
        common(command, options);
        std::string verb = action;
        command->final_callback(
            [options, verb] { throw CLI::RuntimeError(power(*options, verb)); });
    }

    command = vm->add_subcommand("reconfigure", "Change a VM that is off");
    command->add_option("name", options->name, "the VM")->required();
    command->add_option("--cpus", options->cpus, "vCPUs")->check(CLI::Range(1, 64));
    command->add_option("--memory", options->memory, "RAM, as 512M or 2G");
    command->add_option("--kernel", options->kernel, "the guest kernel")->type_name("FILE");
    command->add_option("--initrd", options->initrd, "an initramfs")->type_name("FILE");
    command->add_option("--cmdline", options->cmdline, "the kernel's command line");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(reconfigure(*options)); });

    add_console_command(vm, options);
    add_console_command(&app, options);

    command =
        vm->add_subcommand("delete", "Unregister a VM that is off; --files deletes its folder");
    command->add_option("name", options->name, "the VM")->required();
    command->add_flag("--files", options->files, "delete its folder (disks, logs) too");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(remove(*options)); });

    command = vm->add_subcommand("clone", "Clone a VM that is off (a task; waits for it)");
    command->add_option("name", options->name, "the VM to clone")->required();
    command->add_option("clone", options->other, "the clone's name")->required();
    command->add_option("--datastore", options->datastore, "where it goes (default: the VM's)");
    command->add_flag("--linked", options->linked,
                      "qcow2 overlays on the template's disks instead of copies");
    command->add_flag("--no-wait", options->no_wait, "print the task and return");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(clone(*options)); });

    command = vm->add_subcommand("rename", "Rename a VM that is off (and its folder)");
    command->add_option("name", options->name, "the VM")->required();
    command->add_option("new-name", options->other, "its new name")->required();
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(rename(*options)); });

    CLI::App* disks = vm->add_subcommand("disk", "A VM's virtual disks (VM off)");
    disks->require_subcommand(1);
    command = disks->add_subcommand("add", "Make a new thin disk in the VM's folder");
    command->add_option("name", options->name, "the VM")->required();
    command->add_option("--size", options->disk_size, "its size, as 10G")->required();
    command->add_option("--format", options->disk_format, "qcow2 (default) or raw")
        ->check(CLI::IsMember({"qcow2", "raw"}));
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(disk(*options, "add")); });
    command = disks->add_subcommand("remove", "Detach a disk; --files deletes its image too");
    command->add_option("name", options->name, "the VM")->required();
    command->add_option("index", options->disk_index, "the disk's index in its definition, from 0")
        ->required();
    command->add_flag("--files", options->files, "delete its image (only one in the VM's folder)");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(disk(*options, "remove")); });
    command = disks->add_subcommand(
        "convert", "Convert a disk in the VM's folder to another format (a task; waits for it)");
    command->add_option("name", options->name, "the VM")->required();
    command->add_option("index", options->disk_index, "the disk's index in its definition, from 0")
        ->required();
    command->add_option("--format", options->disk_format, "qcow2 (default) or raw")
        ->check(CLI::IsMember({"qcow2", "raw"}));
    command->add_flag("--no-wait", options->no_wait, "print the task and return");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(disk(*options, "convert")); });

    command = vm->add_subcommand("template", "Make a VM that is off a template: cloned, never run");
    command->add_option("name", options->name, "the VM")->required();
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(make_template(*options)); });

    CLI::App* snapshots = vm->add_subcommand(
        "snapshot", "Snapshots of a VM's disks (create and list also while it runs)");
    snapshots->require_subcommand(1);
    for (const auto& [action, help] :
         {std::pair{"create", "Take a snapshot of every writable disk (running: crash-consistent)"},
          std::pair{"list", "The VM's snapshots"},
          std::pair{"revert", "Bring every disk back to a snapshot"},
          std::pair{"delete", "Delete a snapshot (a task; waits for it)"}}) {
        command = snapshots->add_subcommand(action, help);
        command->add_option("name", options->name, "the VM")->required();
        if (std::string(action) != "list") {
            command->add_option("snapshot", options->other, "the snapshot's name")->required();
        }
        if (std::string(action) == "delete") {
            command->add_flag("--no-wait", options->no_wait, "print the task and return");
        }
        common(command, options);
        std::string verb = action;
        command->final_callback(
            [options, verb] { throw CLI::RuntimeError(snapshot(*options, verb)); });
    }

    CLI::App* task = app.add_subcommand(
        "task", "Long operations of vireod (clone, disk convert, snapshot delete)");
    task->require_subcommand(1);
    for (const auto& [action, help] :
         {std::pair{"list", "Every task, oldest first"},
          std::pair{"wait", "Follow a task until it ends (exit status 0 if it succeeded)"},
          std::pair{"cancel", "Cancel a running task (what it did is undone) and wait for it"}}) {
        command = task->add_subcommand(action, help);
        if (std::string(action) != "list") {
            command->add_option("id", options->task, "the task's number")->required();
        }
        common(command, options);
        std::string verb = action;
        command->final_callback(
            [options, verb] { throw CLI::RuntimeError(tasks(*options, verb)); });
    }

    CLI::App* event = app.add_subcommand("event", "The host's event log, through vireod");
    event->require_subcommand(1);
    command = event->add_subcommand("list", "Events, oldest first");
    command->add_option("--after", options->after, "only events after this id");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(events(*options)); });

    CLI::App* token = app.add_subcommand("token", "API tokens for remote clients, through vireod");
    token->require_subcommand(1);
    command = token->add_subcommand("create", "Make a token (its secret is shown once)");
    command->add_option("name", options->name, "the token's name")->required();
    command->add_option("--role", options->role, "admin, or read-only (GET requests only)")
        ->required()
        ->check(CLI::IsMember({"admin", "read-only"}));
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(token_create(*options)); });
    command = token->add_subcommand("list", "The tokens (names and roles, never secrets)");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(token_list(*options)); });
    command = token->add_subcommand("delete", "Revoke a token");
    command->add_option("name", options->name, "the token")->required();
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(token_delete(*options)); });
}

void add_host_show_command(CLI::App* host) {
    auto options = std::make_shared<VmOptions>();
    CLI::App* command = host->add_subcommand("show", "The host, as its vireod sees it");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(host_show(*options)); });
}

}  // namespace vireo::cli
