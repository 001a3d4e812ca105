// vireo-vmm: one process per VM. Takes the VM's definition (JSON) from a file
// or over its control socket, builds the machine, runs it until it ends, and
// exits with a status that says how (src/vmm/machine_exit.h).
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "base/error.h"
#include "base/unique_fd.h"
#include "devices/legacy/serial_8250.h"
#include "vmm/console.h"
#include "vmm/control_server.h"
#include "vmm/event_loop.h"
#include "vmm/machine.h"
#include "vmm/seccomp_policy.h"

namespace vireo {
namespace {

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

// The bytes of a console-input request: "hex", up to kMaxConsoleInput bytes.
std::vector<uint8_t> console_input_bytes(const nlohmann::json& request) {
    constexpr size_t kMaxConsoleInput = 4096;
    const auto found = request.find("hex");
    if (found == request.end() || !found->is_string()) {
        fail("console-input needs \"hex\": the bytes for the guest, in hex");
    }
    const std::string& text = found->get_ref<const std::string&>();
    if (text.size() % 2 != 0 || text.size() > 2 * kMaxConsoleInput) {
        fail("console-input: \"hex\" must be an even number of hex digits, at most {}",
             2 * kMaxConsoleInput);
    }
    std::vector<uint8_t> bytes(text.size() / 2);
    for (size_t i = 0; i < bytes.size(); ++i) {
        auto [end, error] =
            std::from_chars(text.data() + 2 * i, text.data() + 2 * i + 2, bytes[i], 16);
        if (error != std::errc() || end != text.data() + 2 * i + 2) {
            fail("console-input: \"hex\" has '{}' at {}, not a hex digit pair",
                 text.substr(2 * i, 2), 2 * i);
        }
    }
    return bytes;
}

// The VMM's life: wait for a definition (unless it came as a file), run the
// machine, end. Control commands that need a machine refuse politely before.
class Vmm {
public:
    explicit Vmm(UniqueFd signals) : signals_(std::move(signals)) {
        loop_.add(signals_.get(), [this] { on_signal(); });
    }

    void listen(const std::string& path) {
        control_.emplace(path, loop_);
        control_->on("info", [this](const nlohmann::json&) {
            return machine_ ? machine_->info()
                            : nlohmann::json{{"state", "waiting for a definition"}};
        });
        control_->on("boot", [this](const nlohmann::json& request) {
            if (machine_) {
                fail("the VM is already booted");
            }
            if (!request.contains("definition")) {
                fail("boot needs a \"definition\": the VM definition as a JSON object");
            }
            boot(VmConfig::from_json(request["definition"], "boot request"));
            return machine_->info();
        });
        control_->on("pause", [this](const nlohmann::json&) {
            machine().pause();
            return machine_->info();
        });
        control_->on("resume", [this](const nlohmann::json&) {
            machine().resume();
            return machine_->info();
        });
        control_->on("stop", [this](const nlohmann::json&) {
            end(MachineExit{MachineExit::Reason::Stopped, 0, "control socket"});
            return nlohmann::json{{"state", "stopping"}};
        });
        control_->on("shutdown", [this](const nlohmann::json&) {
            machine().press_power_button();
            return nlohmann::json{{"state", "power button pressed"}};
        });
        // {"command": "console-input", "hex": "6c730d"}: keys for the serial
        // port. It takes what its receive FIFO has room for now ("accepted");
        // the caller sends the rest again, so nothing typed is dropped.
        control_->on("console-input", [this](const nlohmann::json& request) {
            std::vector<uint8_t> bytes = console_input_bytes(request);
            return nlohmann::json{{"accepted", machine().serial().enqueue_input(bytes)}};
        });
        // {"command": "snapshot", "name": "before-upgrade"}: a crash-consistent
        // snapshot of every writable disk, the vCPUs paused around it.
        control_->on("snapshot", [this](const nlohmann::json& request) {
            if (!request.contains("name") || !request["name"].is_string()) {
                fail("snapshot needs \"name\": the snapshot's name");
            }
            return machine().snapshot_disks(request["name"].get<std::string>());
        });
        // {"command": "set-link", "nic": 0, "up": false}: unplug a vNIC's cable.
        control_->on("set-link", [this](const nlohmann::json& request) {
            if (!request.contains("nic") || !request["nic"].is_number_unsigned() ||
                !request.contains("up") || !request["up"].is_boolean()) {
                fail(
                    "set-link needs \"nic\" (the vNIC's index, from 0) and \"up\" (true or "
                    "false)");
            }
            machine().set_nic_link(request["nic"].get<size_t>(), request["up"].get<bool>());
            return machine_->info();
        });
    }

    void boot(const VmConfig& config) {
        if (config.control_socket && !control_) {
            listen(*config.control_socket);
        }
        machine_ = Machine::build(config);
        loop_.add(machine_->ended_fd(), [this] { loop_.stop(); });
        for (const Machine::Watch& watch : machine_->failover_watches()) {
            loop_.add(watch.fd, watch.on_readable);
        }
        if (config.console.input) {
            input_.emplace(machine_->serial(), [this] {
                end(MachineExit{MachineExit::Reason::Stopped, 0, "escape key"});
            });
        }
        machine_->start();
    }

    MachineExit run() {
        loop_.run();
        input_.reset();  // restores the terminal before anything more is printed
        if (machine_) {
            return machine_->finish();
        }
        return early_exit_.value_or(MachineExit{MachineExit::Reason::Stopped, 0, ""});
    }

private:
    Machine& machine() {
        if (!machine_) {
            fail("no VM yet: send \"boot\" with a definition first");
        }
        return *machine_;
    }

    void end(MachineExit exit) {
        if (machine_) {
            machine_->end(std::move(exit));
        } else {
            early_exit_ = std::move(exit);
            loop_.stop();
        }
    }

    void on_signal() {
        signalfd_siginfo info{};
        if (::read(signals_.get(), &info, sizeof(info)) == sizeof(info)) {
            end(MachineExit{MachineExit::Reason::Stopped, 0,
                            fmt::format("signal {}", strsignal(static_cast<int>(info.ssi_signo)))});
        }
    }

    UniqueFd signals_;
    EventLoop loop_;
    std::optional<ControlServer> control_;
    std::unique_ptr<Machine> machine_;
    std::optional<ConsoleInput> input_;
    std::optional<MachineExit> early_exit_;
};

MachineExit run(const std::optional<std::string>& config_path,
                const std::optional<std::string>& control_socket) {
    try {
        Vmm vmm(block_termination_signals());
        if (control_socket) {
            vmm.listen(*control_socket);
        }
        if (config_path) {
            VmConfig config = VmConfig::from_file(*config_path);
            if (control_socket && config.control_socket &&
                *config.control_socket != *control_socket) {
                fail("{}: control_socket {} differs from --control-socket {}", *config_path,
                     *config.control_socket, *control_socket);
            }
            vmm.boot(config);
        }
        return vmm.run();
    } catch (const HostError& error) {
        return MachineExit{MachineExit::Reason::HostError, 0, error.what()};
    } catch (const Error& error) {
        return MachineExit{MachineExit::Reason::ConfigError, 0, error.what()};
    } catch (const std::exception& error) {
        return MachineExit{MachineExit::Reason::VmmFailure, 0, error.what()};
    }
}

void write_report(const std::string& path, const MachineExit& result) {
    std::ofstream report(path);
    report << nlohmann::json{{"reason", result.name()},
                             {"exit_status", result.exit_status()},
                             {"guest_code", result.guest_code},
                             {"detail", result.detail}}
                  .dump()
           << "\n";
}

}  // namespace
}  // namespace vireo

int main(int argc, char** argv) {
    CLI::App app{
        "vireo-vmm: runs one virtual machine on KVM. The VM definition comes from --config, or\n"
        "over --control-socket as {\"command\": \"boot\", \"definition\": {...}} (see "
        "docs/vmm.md)."};
    std::optional<std::string> config_path;
    std::optional<std::string> control_socket;
    std::optional<std::string> report_path;
    std::string log_level = "info";
    app.add_option("--config", config_path, "the VM definition, a JSON file (or /dev/fd/N)");
    app.add_option("--control-socket", control_socket,
                   "listen for control commands here (and for the definition, without --config)");
    app.add_option("--report", report_path, "write how the VM ended to this file, as JSON");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
    bool seccomp = false;
    app.add_flag("--seccomp", seccomp,
                 "confine the VMM to the system calls it needs: any other kills it (SIGSYS)");
    try {
        app.parse(argc, argv);
        if (!config_path && !control_socket) {
            throw CLI::ValidationError(
                "needs --config FILE, or --control-socket PATH to receive it");
        }
    } catch (const CLI::ParseError& error) {
        return app.exit(error) == 0 ? 0 : 2;
    }

    if (seccomp) {
        try {
            vireo::confine_to_vmm_syscalls();
        } catch (const vireo::Error& error) {
            std::cerr << "vireo: " << error.what() << "\n";
            return 12;  // the VMM itself failed
        }
    }

    // The same prefix as the vireo command's messages: one program to the operator.
    auto logger = spdlog::stderr_color_mt("vireo-vmm");
    logger->set_pattern("vireo: %^%l%$: %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(log_level));

    vireo::MachineExit result = vireo::run(config_path, control_socket);
    if (result.reason == vireo::MachineExit::Reason::ConfigError ||
        result.reason == vireo::MachineExit::Reason::HostError) {
        std::cerr << "vireo: " << result.detail << "\n";
    } else {
        spdlog::info("{}", result.describe());
    }
    if (report_path) {
        vireo::write_report(*report_path, result);
    }
    return result.exit_status();
}
