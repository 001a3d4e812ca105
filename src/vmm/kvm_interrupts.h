#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "devices/interrupts.h"
#include "kvm/vm.h"

namespace vireo {

// The device-facing interrupt and doorbell interfaces (devices/interrupts.h)
// implemented with KVM: IOAPIC pins through KVM_IRQ_LINE, MSI vectors through
// irqfd + GSI routes, doorbells through ioeventfd.

class KvmIrqLine : public IrqLine {
public:
    KvmIrqLine(kvm::Vm& vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
    void set_level(bool asserted) override { vm_.set_irq_line(gsi_, asserted); }

private:
    kvm::Vm& vm_;
    uint32_t gsi_;
};

class KvmMsiController : public MsiController {
public:
    KvmMsiController(kvm::Vm& vm, uint32_t first_gsi, uint32_t gsi_count)
        : vm_(vm), next_gsi_(first_gsi), end_gsi_(first_gsi + gsi_count) {}
    // Throws vireo::Error when the GSI space is exhausted.
    std::unique_ptr<MsiVector> create_vector() override;

private:
    kvm::Vm& vm_;
    std::atomic<uint32_t> next_gsi_;
    uint32_t end_gsi_;
};

// Where KVM matches a doorbell of any length (KVM_CAP_IOEVENTFD_ANY_LENGTH),
// doorbells are bound that way, as QEMU binds virtio's: KVM then answers them
// on its fast MMIO path (on Intel VT-x, without decoding the instruction).
class KvmIoEventRegistry : public IoEventRegistry {
public:
    explicit KvmIoEventRegistry(kvm::Vm& vm);
    std::unique_ptr<IoEventBinding> bind_mmio(uint64_t address, uint32_t length,
                                              const EventFd& event) override;

private:
    kvm::Vm& vm_;
    const bool any_length_;
};

}  // namespace vireo
