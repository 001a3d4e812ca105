#include "vmm/machine_exit.h"

#include <fmt/format.h>

namespace vireo {

int MachineExit::exit_status() const {
    switch (reason) {
        case Reason::PoweredOff:
            return 0;
        case Reason::GuestExit:
            return static_cast<int>(((guest_code & 0x7f) << 1) | 1);
        case Reason::ConfigError:
        case Reason::HostError:
            return 2;
        case Reason::Reset:
            return 4;
        case Reason::Stopped:
            return 6;
        case Reason::TripleFault:
            return 8;
        case Reason::KvmFailure:
            return 10;
        case Reason::VmmFailure:
            return 12;
        case Reason::GuestPanic:
            return 14;
    }
    return 12;
}

const char* MachineExit::name() const {
    switch (reason) {
        case Reason::PoweredOff:
            return "powered-off";
        case Reason::GuestExit:
            return "guest-exit";
        case Reason::ConfigError:
            return "config-error";
        case Reason::HostError:
            return "host-error";
        case Reason::Reset:
            return "reset";
        case Reason::Stopped:
            return "stopped";
        case Reason::TripleFault:
            return "triple-fault";
        case Reason::KvmFailure:
            return "kvm-failure";
        case Reason::VmmFailure:
            return "vmm-failure";
        case Reason::GuestPanic:
            return "guest-panic";
    }
    return "vmm-failure";
}

std::string MachineExit::describe() const {
    std::string text;
    switch (reason) {
        case Reason::PoweredOff:
            text = "the guest powered off (ACPI S5)";
            break;
        case Reason::GuestExit:
            text = fmt::format("the guest exited with code {} (debug-exit port)", guest_code);
            break;
        case Reason::ConfigError:
            text = "the VM could not be set up";
            break;
        case Reason::HostError:
            text = "this host cannot run VMs";
            break;
        case Reason::Reset:
            text = "the guest reset the machine";
            break;
        case Reason::Stopped:
            text = "stopped by the operator";
            break;
        case Reason::TripleFault:
            text = "the guest triple-faulted";
            break;
        case Reason::KvmFailure:
            text = "KVM could not run the guest";
            break;
        case Reason::VmmFailure:
            text = "the VMM failed";
            break;
        case Reason::GuestPanic:
            text = "the guest kernel panicked (pvpanic)";
            break;
    }
    return detail.empty() ? text : text + ": " + detail;
}

}  // namespace vireo
