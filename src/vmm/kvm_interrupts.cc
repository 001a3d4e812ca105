#include "vmm/kvm_interrupts.h"

#include <linux/kvm.h>

#include "base/error.h"
#include "base/event_fd.h"

namespace vireo {

namespace {

// One MSI vector: an eventfd bound (irqfd) to its own GSI, whose route carries
// the address/data the guest programmed. trigger() is a single eventfd write.
class KvmMsiVector : public MsiVector {
public:
    KvmMsiVector(kvm::Vm& vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
    ~KvmMsiVector() override {
        if (attached_) {
            vm_.detach_irqfd(event_.fd(), gsi_);
            vm_.remove_msi_route(gsi_);
        }
    }

    void set_message(const MsiMessage& message) override {
        std::lock_guard lock(mutex_);
        vm_.set_msi_route(gsi_, message.address, message.data);
        if (!attached_) {
            // Bind only once a route exists, so an early trigger cannot fire a stale vector.
            vm_.attach_irqfd(event_.fd(), gsi_);
            attached_ = true;
        }
    }

    void trigger() override {
        if (attached_) {
            event_.signal();
        }
    }

    int direct_fd() const override { return attached_ ? event_.fd() : -1; }

private:
    kvm::Vm& vm_;
    uint32_t gsi_;
    EventFd event_;
    std::mutex mutex_;
    std::atomic<bool> attached_ = false;
};

class KvmIoEventBinding : public IoEventBinding {
public:
    KvmIoEventBinding(kvm::Vm& vm, uint64_t address, uint32_t length, int fd)
        : vm_(vm), address_(address), length_(length), fd_(fd) {
        vm_.attach_ioeventfd(fd_, address_, length_, /*port_io=*/false);
    }
    ~KvmIoEventBinding() override { vm_.detach_ioeventfd(fd_, address_, length_, false); }

private:
    kvm::Vm& vm_;
    uint64_t address_;
    uint32_t length_;
    int fd_;
};

}  // namespace

std::unique_ptr<MsiVector> KvmMsiController::create_vector() {
    uint32_t gsi = next_gsi_.fetch_add(1);
    if (gsi >= end_gsi_) {
        fail("no free interrupt routes left for MSI vectors (at most {})", end_gsi_);
    }
    return std::make_unique<KvmMsiVector>(vm_, gsi);
}

KvmIoEventRegistry::KvmIoEventRegistry(kvm::Vm& vm)
    : vm_(vm), any_length_(vm.system().capability(KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0) {}

std::unique_ptr<IoEventBinding> KvmIoEventRegistry::bind_mmio(uint64_t address, uint32_t length,
                                                              const EventFd& event) {
    return std::make_unique<KvmIoEventBinding>(vm_, address, any_length_ ? 0 : length, event.fd());
}

}  // namespace vireo
