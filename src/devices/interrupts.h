#pragma once

#include <cstdint>
#include <memory>

namespace vireo {

class EventFd;

// The ways a device model signals the guest, kept free of KVM so that device
// models are unit-testable with fakes. src/vmm implements them with KVM
// (KVM_IRQ_LINE, irqfd + GSI routing); tests implement them with counters.

// A wire into the interrupt controllers (a GSI of the IOAPIC / PIC).
class IrqLine {
public:
    virtual ~IrqLine() = default;
    virtual void set_level(bool asserted) = 0;
    // An edge: raise and lower.
    void pulse() {
        set_level(true);
        set_level(false);
    }
};

struct MsiMessage {
    uint64_t address = 0;
    uint32_t data = 0;
    bool operator==(const MsiMessage&) const = default;
};

// One MSI / MSI-X vector. trigger() is safe from any thread (a device's I/O
// thread calls it); with KVM it is one eventfd write (irqfd), no vCPU exit.
class MsiVector {
public:
    virtual ~MsiVector() = default;
    // The guest (re)programmed the vector's address/data.
    virtual void set_message(const MsiMessage& message) = 0;
    virtual void trigger() = 0;
    // An eventfd whose signal raises the vector inside the hypervisor (irqfd),
    // for a back end in the host kernel (vhost) to signal without a trip through
    // the VMM; -1 when there is none, or no message is programmed yet. It knows
    // nothing of masking: Msix hands it out only while the vector may fire.
    virtual int direct_fd() const { return -1; }
};

class MsiController {
public:
    virtual ~MsiController() = default;
    virtual std::unique_ptr<MsiVector> create_vector() = 0;
};

// Doorbells: a guest write to `address` (MMIO) signals `event` inside KVM
// (ioeventfd) without stopping the vCPU thread. The binding lasts as long as
// the returned object.
class IoEventBinding {
public:
    virtual ~IoEventBinding() = default;
};

class IoEventRegistry {
public:
    virtual ~IoEventRegistry() = default;
    // A write of `length` bytes (2 for a virtio notify) to `address`; the
    // registry may bind writes of any length there, where that is faster.
    virtual std::unique_ptr<IoEventBinding> bind_mmio(uint64_t address, uint32_t length,
                                                      const EventFd& event) = 0;
};

}  // namespace vireo
