#pragma once

#include <functional>
#include <memory>
#include <thread>

#include "devices/bus.h"
#include "kvm/vcpu.h"
#include "memory/guest_memory.h"
#include "vmm/machine_exit.h"
#include "vmm/run_control.h"

namespace vireo {

// One thread running one vCPU: KVM_RUN, then hand the exit to the port or
// MMIO bus, or end the machine. The whole loop is in run().
class VcpuThread {
public:
    struct Context {
        const Bus& pio_bus;
        const Bus& mmio_bus;
        const GuestMemory& memory;
        RunControl& run_control;
        std::function<void(MachineExit)> end_machine;
    };

    VcpuThread(std::unique_ptr<kvm::Vcpu> vcpu, Context context);
    ~VcpuThread();  // joins

    void start();
    void join();
    kvm::Vcpu& vcpu() { return *vcpu_; }

private:
    void run();
    // Returns false when the loop must end.
    bool handle(kvm::VcpuExit& exit);
    // "vCPU 0 at RIP 0x1234 (ring 0): bytes 0f 01 c1 ..."
    std::string describe_position();

    std::unique_ptr<kvm::Vcpu> vcpu_;
    Context context_;
    std::thread thread_;
};

}  // namespace vireo
