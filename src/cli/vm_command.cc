#include "cli/vm_command.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/byte_size.h"
#include "base/error.h"
#include "cli/api_client.h"

namespace vireo::cli {
namespace {

using nlohmann::json;

struct VmOptions {
    std::string socket;
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
    bool follow = false;
    // event list
    int64_t after = 0;
};

ApiClient client(const VmOptions& options) {
    return ApiClient(options.socket.empty() ? ApiClient::default_socket()
                                            : std::filesystem::path(options.socket));
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

// Prints the console from the start; with --follow, goes on until the VM is off.
int console(const VmOptions& options) {
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

// The options every command against vireod takes.
void common(CLI::App* command, const std::shared_ptr<VmOptions>& options) {
    command
        ->add_option("--socket", options->socket,
                     "vireod's API socket ($VIREO_SOCKET, /run/vireo/vireod.sock)")
        ->type_name("PATH");
    command->add_flag("--json", options->json, "print the answer as JSON");
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

    command = vm->add_subcommand("console", "The VM's console output (read-only for now)");
    command->add_option("name", options->name, "the VM")->required();
    command->add_flag("--follow,-f", options->follow, "go on printing until the VM is off");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(console(*options)); });

    command =
        vm->add_subcommand("delete", "Unregister a VM that is off; --files deletes its folder");
    command->add_option("name", options->name, "the VM")->required();
    command->add_flag("--files", options->files, "delete its folder (disks, logs) too");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(remove(*options)); });

    CLI::App* event = app.add_subcommand("event", "The host's event log, through vireod");
    event->require_subcommand(1);
    command = event->add_subcommand("list", "Events, oldest first");
    command->add_option("--after", options->after, "only events after this id");
    common(command, options);
    command->final_callback([options] { throw CLI::RuntimeError(events(*options)); });
}

}  // namespace vireo::cli
