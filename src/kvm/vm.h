#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "arch/x86/interrupt_wiring.h"
#include "base/unique_fd.h"
#include "kvm/system.h"

namespace vireo::kvm {

// One KVM virtual machine: memory slots, the in-kernel interrupt controllers
// (PIC, IOAPIC, LAPICs, PIT) and the fast paths between KVM and device models
// (irqfd for interrupts, ioeventfd for doorbells, GSI routes for MSI).
class Vm {
public:
    explicit Vm(const System& system);

    int fd() const { return fd_.get(); }
    const System& system() const { return system_; }

    // KVM_SET_USER_MEMORY_REGION. With dirty_logging, KVM tracks writes (migration).
    void map_memory(uint32_t slot, uint64_t guest_address, uint64_t size, void* host,
                    bool dirty_logging = false);

    // In-kernel PIC + IOAPIC + LAPICs and the PIT; call before creating vCPUs.
    void create_interrupt_controllers();

    // Drive an IOAPIC/PIC pin (GSI 0..23).
    void set_irq_line(uint32_t gsi, bool level);
    // Inject one MSI now, without a route (slow path, used from a vCPU thread).
    void signal_msi(uint64_t address, uint32_t data);

    // The routes from interrupt numbers to PIC and IOAPIC pins (the machine's
    // wiring, x86::irqchip_routes()), which replace KVM's default table at once.
    void set_irqchip_routes(std::vector<x86::IrqchipRoute> routes);

    // GSI routes for MSI vectors, kept alongside the irqchip routes: setting a
    // route replaces the kernel's whole table, so the table is kept here.
    void set_msi_route(uint32_t gsi, uint64_t address, uint32_t data);
    void remove_msi_route(uint32_t gsi);

    // Bind an eventfd to a GSI: a write to it raises the interrupt inside KVM.
    void attach_irqfd(int event_fd, uint32_t gsi);
    void detach_irqfd(int event_fd, uint32_t gsi);

    // Bind an eventfd to a guest write (MMIO or port I/O) of `length` bytes.
    void attach_ioeventfd(int event_fd, uint64_t address, uint32_t length, bool port_io);
    void detach_ioeventfd(int event_fd, uint64_t address, uint32_t length, bool port_io);

private:
    struct MsiRoute {
        uint32_t gsi;
        uint64_t address;
        uint32_t data;
    };
    void commit_routes();  // caller holds routes_mutex_

    const System& system_;
    UniqueFd fd_;
    std::mutex routes_mutex_;
    std::vector<x86::IrqchipRoute> irqchip_routes_;
    std::vector<MsiRoute> msi_routes_;
};

}  // namespace vireo::kvm
