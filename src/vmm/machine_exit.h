#pragma once

#include <cstdint>
#include <string>

namespace vireo {

// How a VM ended, and the process exit status that says so. Statuses from the
// guest's debug-exit port are odd ((code << 1) | 1, as QEMU's isa-debug-exit);
// every other ending has its own even status, so scripts can tell them apart.
struct MachineExit {
    enum class Reason {
        PoweredOff,   // ACPI S5 from the guest: status 0
        GuestExit,    // the debug-exit port: status (code << 1) | 1
        ConfigError,  // bad input (option, file, VM definition) before the guest ran: 2
        HostError,    // this host cannot run VMs (no KVM, a missing capability): also 2
        Reset,        // i8042 or ACPI reset: status 4
        Stopped,      // the operator stopped it (control socket, escape key, signal): 6
        TripleFault,  // the guest reset itself by a triple fault: status 8
        KvmFailure,   // KVM could not run the guest (internal/emulation error): 10
        VmmFailure,   // a bug or host failure inside the VMM while running: 12
        GuestPanic,   // the guest kernel panicked (pvpanic): 14
    };

    Reason reason = Reason::PoweredOff;
    uint32_t guest_code = 0;  // for GuestExit
    std::string detail;       // one line for the operator

    int exit_status() const;
    // "powered-off", "guest-exit", ...: the name used in logs and --json output.
    const char* name() const;
    // "powered off by the guest (ACPI S5)", "guest exit code 1", ... plus detail.
    std::string describe() const;
};

}  // namespace vireo
