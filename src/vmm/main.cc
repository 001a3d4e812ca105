// vireo-vmm: one process per VM. Reads the VM's definition (JSON), builds the
// machine, runs it until it ends, and exits with a status that says how.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/unique_fd.h"
#include "vmm/console.h"
#include "vmm/control_server.h"
#include "vmm/event_loop.h"
#include "vmm/machine.h"

namespace vireo {
namespace {

VmConfig load_config(const std::string& path) {
    std::ifstream file(path);
    if (!file) {
        fail_errno("{}: cannot read the VM definition", path);
    }
    std::stringstream text;
    text << file.rdbuf();
    return VmConfig::from_json_text(text.str(), path);
}

// SIGTERM, SIGINT, SIGHUP end the VM in an orderly way; they are blocked in
// every thread and read from a signalfd by the main loop.
UniqueFd block_termination_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    for (int signal : {SIGTERM, SIGINT, SIGHUP}) {
        sigaddset(&signals, signal);
    }
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    // A vanished console reader must not kill the VMM.
    ::signal(SIGPIPE, SIG_IGN);
    UniqueFd fd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd) {
        fail_errno("signalfd");
    }
    return fd;
}

void register_commands(ControlServer& control, Machine& machine) {
    control.on("info", [&machine](const nlohmann::json&) { return machine.info(); });
    control.on("pause", [&machine](const nlohmann::json&) {
        machine.pause();
        return machine.info();
    });
    control.on("resume", [&machine](const nlohmann::json&) {
        machine.resume();
        return machine.info();
    });
    control.on("stop", [&machine](const nlohmann::json&) {
        machine.end(MachineExit{MachineExit::Reason::Stopped, 0, "control socket"});
        return nlohmann::json{{"state", "stopping"}};
    });
    control.on("shutdown", [&machine](const nlohmann::json&) {
        machine.press_power_button();
        return nlohmann::json{{"state", "power button pressed"}};
    });
}

int run(const std::string& config_path, const std::optional<std::string>& report_path) {
    MachineExit result;
    try {
        UniqueFd signals = block_termination_signals();
        VmConfig config = load_config(config_path);
        auto machine = Machine::build(config);

        EventLoop loop;
        std::optional<ControlServer> control;
        if (config.control_socket) {
            control.emplace(*config.control_socket, loop);
            register_commands(*control, *machine);
        }
        loop.add(signals.get(), [&] {
            signalfd_siginfo info{};
            if (::read(signals.get(), &info, sizeof(info)) == sizeof(info)) {
                machine->end(MachineExit{MachineExit::Reason::Stopped, 0,
                                         fmt::format("signal {}", strsignal(static_cast<int>(info.ssi_signo)))});
            }
        });
        loop.add(machine->ended_fd(), [&loop] { loop.stop(); });
        {
            std::optional<ConsoleInput> input;
            if (config.console.input) {
                input.emplace(machine->serial(), [&machine] {
                    machine->end(MachineExit{MachineExit::Reason::Stopped, 0, "escape key"});
                });
            }
            machine->start();
            loop.run();
            result = machine->finish();
        }
    } catch (const Error& error) {
        result = MachineExit{MachineExit::Reason::ConfigError, 0, error.what()};
    } catch (const std::exception& error) {
        result = MachineExit{MachineExit::Reason::VmmFailure, 0, error.what()};
    }

    if (result.reason == MachineExit::Reason::ConfigError) {
        std::cerr << "vireo-vmm: " << result.detail << "\n";
    } else {
        spdlog::info("{}", result.describe());
    }
    if (report_path) {
        std::ofstream report(*report_path);
        report << nlohmann::json{{"reason", result.name()},
                                 {"exit_status", result.exit_status()},
                                 {"guest_code", result.guest_code},
                                 {"detail", result.detail}}
                      .dump()
               << "\n";
    }
    return result.exit_status();
}

}  // namespace
}  // namespace vireo

int main(int argc, char** argv) {
    CLI::App app{"vireo-vmm: runs one virtual machine on KVM (see docs/vmm.md)"};
    std::string config_path;
    std::optional<std::string> report_path;
    std::string log_level = "info";
    app.add_option("--config", config_path, "the VM definition, a JSON file (or /dev/fd/N)")
        ->required();
    app.add_option("--report", report_path, "write how the VM ended to this file, as JSON");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
    CLI11_PARSE(app, argc, argv);

    auto logger = spdlog::stderr_color_mt("vireo-vmm");
    logger->set_pattern("[%n] %^%l%$: %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(log_level));
    return vireo::run(config_path, report_path);
}
