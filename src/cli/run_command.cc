#include "cli/run_command.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "arch/x86/kernel_loader.h"
#include "base/byte_size.h"
#include "base/error.h"
#include "cli/help_text.h"
#include "cli/option_lists.h"
#include "cli/portgroup_nics.h"
#include "cli/vmm_process.h"
#include "net/interface_name.h"
#include "net/mac_address.h"
#include "net/network_config.h"
#include "vmm/vm_config.h"

namespace vireo::cli {

namespace {

struct RunOptions {
    std::string kernel;
    std::string initrd;
    std::string cmdline;
    uint32_t cpus = 1;
    std::string memory = "256M";
    std::string name = "vm";
    std::string console_log;
    std::string control_socket;
    std::vector<std::string> disks;
    std::vector<std::string> nics;
    uint32_t poll_max_us = VmConfig::Devices{}.poll_max_us;
    bool json = false;
};

std::string absolute(const std::string& path) {
    return std::filesystem::absolute(path).lexically_normal().string();
}

// The N of a `queues=N` option of --disk or --nic, 1 to `most` `what`.
unsigned parse_queues(std::string_view option, const std::string& spec, std::string_view part,
                      unsigned most, std::string_view what) {
    unsigned queues = 0;
    std::string_view text = part.substr(7);
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), queues);
    if (error != std::errc() || end != text.data() + text.size() || queues < 1 || queues > most) {
        fail("{} {}: queues={}: give 1 to {} {}", option, spec, text, most, what);
    }
    return queues;
}

// --disk PATH[,readonly][,serial=S][,cache=MODE][,queues=N]
VmConfig::Disk parse_disk(const std::string& spec) {
    std::vector<std::string> parts = split_commas(spec);
    VmConfig::Disk disk;
    if (parts[0].empty()) {
        fail(
            "--disk {}: no image path before the options "
            "(PATH[,readonly][,serial=S][,cache=MODE][,queues=N])",
            spec);
    }
    if (!std::filesystem::exists(parts[0])) {
        fail("--disk {}: no such file", parts[0]);
    }
    if (!std::filesystem::is_regular_file(parts[0]) && !std::filesystem::is_block_file(parts[0])) {
        fail("--disk {}: not a regular file or block device", parts[0]);
    }
    disk.path = absolute(parts[0]);
    for (size_t i = 1; i < parts.size(); ++i) {
        const std::string& part = parts[i];
        if (part == "readonly") {
            disk.read_only = true;
        } else if (part.starts_with("serial=")) {
            disk.serial = part.substr(7);
            bool printable = std::all_of(disk.serial.begin(), disk.serial.end(),
                                         [](char c) { return c >= 0x20 && c <= 0x7e; });
            if (disk.serial.empty() || disk.serial.size() > VmConfig::kMaxDiskSerial ||
                !printable) {
                fail("--disk {}: '{}': the serial must be 1 to {} printable ASCII characters", spec,
                     part, VmConfig::kMaxDiskSerial);
            }
        } else if (part == "cache=none" || part == "cache=writeback") {
            disk.cache = part == "cache=none" ? CacheMode::none : CacheMode::writeback;
        } else if (part.starts_with("cache=")) {
            fail("--disk {}: '{}': the cache mode is writeback or none", spec, part);
        } else if (part.starts_with("queues=")) {
            disk.queues =
                parse_queues("--disk", spec, part, VmConfig::kMaxDiskQueues, "request queues");
        } else {
            fail(
                "--disk {}: '{}' is not an option of a disk (readonly, serial=S, cache=MODE, "
                "queues=N)",
                spec, part);
        }
    }
    return disk;
}

// --nic tap=NAME|portgroup=PG[,mac=M][,vhost=on|off][,queues=N]
VmConfig::Nic parse_nic(const std::string& spec) {
    VmConfig::Nic nic;
    std::optional<MacAddress> mac;
    for (const std::string& part : split_commas(spec)) {
        if (part.starts_with("tap=")) {
            nic.tap = part.substr(4);
            if (auto problem = interface_name_problem(nic.tap)) {
                fail("--nic {}: tap {}", spec, *problem);
            }
        } else if (part.starts_with("portgroup=")) {
            nic.portgroup = part.substr(10);
            if (auto problem = portgroup_name_problem(nic.portgroup)) {
                fail("--nic {}: portgroup {}", spec, *problem);
            }
        } else if (part.starts_with("mac=")) {
            mac = parse_mac(part.substr(4));
            if (!mac || is_multicast(*mac)) {
                fail(
                    "--nic {}: '{}' is not a unicast MAC address (six hex bytes, as "
                    "02:76:69:0a:1b:2c)",
                    spec, part.substr(4));
            }
        } else if (part == "vhost=on" || part == "vhost=off") {
            nic.vhost = part == "vhost=on";
        } else if (part.starts_with("queues=")) {
            nic.queues = parse_queues("--nic", spec, part, VmConfig::kMaxNicQueues, "queue pairs");
        } else {
            fail(
                "--nic {}: '{}' is not an option of a vNIC (tap=NAME, portgroup=PG, mac=M, "
                "vhost=on|off, queues=N)",
                spec, part);
        }
    }
    if (nic.tap.empty() == nic.portgroup.empty()) {
        fail(
            "--nic {}: give one of portgroup=PG (a port group of this host's switches) or "
            "tap=NAME (a TAP interface the host wires itself)",
            spec);
    }
    nic.mac = mac.value_or(random_vnic_mac());
    return nic;
}

// The VM definition vireo-vmm receives, and the fds it inherits (its vNICs'
// TAPs on port groups).
struct Launch {
    nlohmann::json definition;
    std::vector<UniqueFd> handed_over;
};

// Checked here with the same parser vireo-vmm uses, so a mistake is reported
// in terms of this command's options.
Launch launch_for(const RunOptions& options) {
    uint64_t memory = parse_byte_size(options.memory, "--memory");
    if (memory % MiB != 0) {
        fail("--memory: {} is not a whole number of MiB", options.memory);
    }
    if (memory / MiB < VmConfig::kMinMemoryMib || memory / MiB > VmConfig::kMaxMemoryMib) {
        fail("--memory: {} is out of range ({} MiB to {} GiB)", options.memory,
             VmConfig::kMinMemoryMib, VmConfig::kMaxMemoryMib / 1024);
    }
    // Checked here, before anything opens KVM: a bad file is the same mistake
    // on every host, and is named as such.
    x86::identify_kernel(options.kernel);
    if (!options.initrd.empty()) {
        x86::require_readable_file(options.initrd, "initrd");
    }
    VmConfig config;
    config.name = options.name;
    config.vcpus = options.cpus;
    config.memory_mib = memory / MiB;
    config.boot.kernel = absolute(options.kernel);
    if (!options.initrd.empty()) {
        config.boot.initrd = absolute(options.initrd);
    }
    config.boot.cmdline = options.cmdline;
    config.devices.poll_max_us = options.poll_max_us;
    if (!options.console_log.empty()) {
        config.console.output = VmConfig::ConsoleOutput::File;
        config.console.path = absolute(options.console_log);
    }
    if (!options.control_socket.empty()) {
        config.control_socket = absolute(options.control_socket);
    }
    for (const std::string& spec : options.disks) {
        config.disks.push_back(parse_disk(spec));
    }
    for (const std::string& spec : options.nics) {
        config.nics.push_back(parse_nic(spec));
    }
    Launch launch;
    launch.handed_over = plug_portgroup_nics(config.nics);
    launch.definition = config.to_json();
    VmConfig::from_json(launch.definition, "vireo run");  // the same checks vireo-vmm makes
    return launch;
}

int run(const RunOptions& options) {
    Launch launch = launch_for(options);
    VmmResult result = run_vmm(launch.definition, std::move(launch.handed_over));
    if (options.json) {
        std::cout << result.report.dump() << std::endl;
    }
    return result.exit_status;
}

}  // namespace

void add_run_command(CLI::App& app) {
    auto options = std::make_shared<RunOptions>();
    CLI::App* command =
        app.add_subcommand("run",
                           "Run a VM in the foreground, its serial console on this terminal.\n"
                           "Press Ctrl-] to stop it. The exit status says how the guest ended:\n"
                           "0 powered off, odd = (guest debug-exit code << 1) | 1, 2 bad input,\n"
                           "4 reset, 6 stopped, 8 triple fault, 10 KVM failure, 12 VMM failure,\n"
                           "14 guest kernel panic.");
    command->add_option("--kernel", options->kernel, "kernel to boot: a bzImage or a PVH ELF")
        ->type_name("PATH")
        ->required();
    command->add_option("--initrd", options->initrd, "initial ramdisk")->type_name("PATH");
    command->add_option("--cmdline", options->cmdline, "kernel command line")->type_name("LINE");
    command->add_option("--cpus", options->cpus, "virtual CPUs (1 to 64)")
        ->type_name("N")
        ->check(whole_number(1, VmConfig::kMaxVcpus, "virtual CPUs"));
    command->add_option("--memory", options->memory, "guest RAM, e.g. 512M or 4G")
        ->type_name("SIZE")
        ->capture_default_str();
    command->add_option("--name", options->name, "the VM's name")
        ->type_name("NAME")
        ->capture_default_str();
    command
        ->add_option("--console-log", options->console_log,
                     "write the console to this file instead of the terminal")
        ->type_name("PATH");
    command
        ->add_option("--control-socket", options->control_socket,
                     "listen for control commands (info, pause, resume, stop, shutdown) here")
        ->type_name("PATH");
    command
        ->add_option("--disk", options->disks,
                     "a virtio-blk disk: PATH[,readonly][,serial=S][,cache=writeback|none]"
                     "[,queues=N] (raw or qcow2; cache none: O_DIRECT, no host page cache; "
                     "queues: request queues, one per vCPU by default; repeatable)")
        ->type_name("DISK")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    command
        ->add_option("--nic", options->nics,
                     "a virtio-net vNIC: portgroup=PG[,mac=M] plugs it into a port group of "
                     "this host's switches; tap=NAME[,mac=M] wires it to a TAP the host "
                     "configures (created when missing). Without mac, one is drawn from "
                     "02:76:69:xx:xx:xx; vhost=off keeps the frames in vireo-vmm rather than "
                     "the host kernel's vhost-net; queues=N gives it N queue pairs (multiqueue, "
                     "at most one per vCPU is useful); repeatable")
        ->type_name("NIC")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    command
        ->add_option("--poll-max-us", options->poll_max_us,
                     "how long each disk's or vNIC's worker may poll for the guest's next "
                     "request before it sleeps, reading the rings without notifications "
                     "meanwhile (0 never; only where the VMM may use more CPUs than the VM "
                     "has vCPUs)")
        ->type_name("US")
        ->check(whole_number(0, VmConfig::kMaxPollMaxUs, "microseconds"))
        ->capture_default_str();
    command->add_flag("--json", options->json, "print how the VM ended as JSON");
    command->final_callback([options] { throw CLI::RuntimeError(run(*options)); });
}

}  // namespace vireo::cli
