#include "cli/host_command.h"

#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "cli/vm_command.h"
#include "kvm/system.h"
#include "kvm/vm.h"

namespace vireo::cli {

namespace {

// With `unmodified_guests`, a KVM without hardware virtualization (PVM) does
// not pass: it cannot run an unmodified Linux or Windows kernel.
int check(bool json, bool unmodified_guests) {
    nlohmann::json report;
    try {
        kvm::System system = kvm::System::open();
        kvm::Vm vm(system);
        report = {{"kvm_usable", true},
                  {"max_vcpus", system.max_vcpus()},
                  {"hardware_virtualization", kvm::System::host_has_hardware_virtualization()}};
    } catch (const Error& error) {
        report = {{"kvm_usable", false}, {"reason", error.what()}};
    }
    bool usable = report["kvm_usable"];
    bool passed = usable && (!unmodified_guests || report["hardware_virtualization"].get<bool>());
    if (usable && !passed) {
        report["reason"] = "no hardware virtualization (vmx or svm) for unmodified guests";
    }
    if (json) {
        std::cout << report.dump() << std::endl;
    } else if (usable) {
        std::cout << "KVM is usable: /dev/kvm opened, every capability present, a VM created "
                     "(up to "
                  << report["max_vcpus"] << " vCPUs per VM)\n";
        if (!report["hardware_virtualization"].get<bool>()) {
            std::cout << (unmodified_guests ? "not for unmodified guests: " : "warning: ")
                      << "this CPU has no vmx or svm flag: /dev/kvm is a software-assisted "
                         "KVM (such as PVM) that runs guests made for it, like Vireo's guest "
                         "kit, but not an unmodified Linux or Windows kernel\n";
        }
    } else {
        std::cout << "KVM is not usable: " << report["reason"].get<std::string>() << "\n";
    }
    // 2, as vireo run's status when this host cannot run a VM.
    return passed ? 0 : 2;
}

}  // namespace

void add_host_command(CLI::App& app) {
    CLI::App* host = app.add_subcommand("host", "This host: its ability to run VMs, its agent");
    host->require_subcommand(1);
    auto json = std::make_shared<bool>(false);
    auto unmodified_guests = std::make_shared<bool>(false);
    CLI::App* command = host->add_subcommand(
        "check", "Check that KVM is usable here (exit status 0 if so, 2 if not)");
    command->add_flag("--json", *json, "print the result as JSON");
    command->add_flag("--unmodified-guests", *unmodified_guests,
                      "also require hardware virtualization (vmx or svm), which an unmodified "
                      "Linux or Windows kernel needs: exit status 2 on a KVM such as PVM");
    command->final_callback(
        [json, unmodified_guests] { throw CLI::RuntimeError(check(*json, *unmodified_guests)); });
    add_host_show_command(host);
}

}  // namespace vireo::cli
