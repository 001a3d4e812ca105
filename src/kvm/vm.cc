#include "kvm/vm.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <memory>

#include "base/error.h"
#include "kvm/kvm_abi.h"

namespace vireo::kvm {

namespace {

// Where KVM keeps its real-mode TSS and identity page table: three pages just
// below the IOAPIC, inside the PCI hole, where no RAM or BAR ever goes.
constexpr uint64_t kTssAddress = 0xfffb'd000;
constexpr uint64_t kIdentityMapAddress = 0xfffb'c000;

}  // namespace

Vm::Vm(const System& system) : system_(system) {
    // Retry on EINTR: creating a VM can be interrupted by a signal.
    int fd;
    do {
        fd = ::ioctl(system.fd(), KVM_CREATE_VM, 0);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        fail_errno("KVM_CREATE_VM");
    }
    fd_.reset(fd);
    if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, kTssAddress) != 0) {
        fail_errno("KVM_SET_TSS_ADDR");
    }
    uint64_t identity = kIdentityMapAddress;
    if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity) != 0) {
        fail_errno("KVM_SET_IDENTITY_MAP_ADDR");
    }
}

void Vm::map_memory(uint32_t slot, uint64_t guest_address, uint64_t size, void* host,
                    bool dirty_logging) {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.flags = dirty_logging ? KVM_MEM_LOG_DIRTY_PAGES : 0;
    region.guest_phys_addr = guest_address;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<uint64_t>(host);
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) != 0) {
        fail_errno("KVM_SET_USER_MEMORY_REGION slot {} at {:#x} ({} bytes)", slot, guest_address,
                   size);
    }
}

void Vm::create_interrupt_controllers() {
    if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) != 0) {
        fail_errno("KVM_CREATE_IRQCHIP");
    }
    kvm_pit_config pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &pit) != 0) {
        fail_errno("KVM_CREATE_PIT2");
    }
}

void Vm::set_irq_line(uint32_t gsi, bool level) {
    kvm_irq_level irq{};
    irq.irq = gsi;
    irq.level = level ? 1 : 0;
    if (::ioctl(fd_.get(), KVM_IRQ_LINE, &irq) != 0) {
        fail_errno("KVM_IRQ_LINE gsi {}", gsi);
    }
}

void Vm::signal_msi(uint64_t address, uint32_t data) {
    kvm_msi msi{};
    msi.address_lo = static_cast<uint32_t>(address);
    msi.address_hi = static_cast<uint32_t>(address >> 32);
    msi.data = data;
    // 0 means the guest blocked it (e.g. masked in the LAPIC): not an error.
    if (::ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi) < 0) {
        fail_errno("KVM_SIGNAL_MSI");
    }
}

void Vm::set_irqchip_routes(std::vector<x86::IrqchipRoute> routes) {
    std::lock_guard lock(routes_mutex_);
    irqchip_routes_ = std::move(routes);
    commit_routes();
}

void Vm::set_msi_route(uint32_t gsi, uint64_t address, uint32_t data) {
    std::lock_guard lock(routes_mutex_);
    auto existing = std::find_if(msi_routes_.begin(), msi_routes_.end(),
                                 [gsi](const MsiRoute& route) { return route.gsi == gsi; });
    if (existing != msi_routes_.end()) {
        *existing = MsiRoute{gsi, address, data};
    } else {
        msi_routes_.push_back(MsiRoute{gsi, address, data});
    }
    commit_routes();
}

void Vm::remove_msi_route(uint32_t gsi) {
    std::lock_guard lock(routes_mutex_);
    std::erase_if(msi_routes_, [gsi](const MsiRoute& route) { return route.gsi == gsi; });
    commit_routes();
}

void Vm::commit_routes() {
    std::vector<kvm_irq_routing_entry> entries;
    for (const x86::IrqchipRoute& route : irqchip_routes_) {
        kvm_irq_routing_entry entry{};
        entry.gsi = route.gsi;
        entry.type = KVM_IRQ_ROUTING_IRQCHIP;
        switch (route.chip) {
            case x86::IrqchipRoute::Chip::PicMaster:
                entry.u.irqchip.irqchip = KVM_IRQCHIP_PIC_MASTER;
                break;
            case x86::IrqchipRoute::Chip::PicSlave:
                entry.u.irqchip.irqchip = KVM_IRQCHIP_PIC_SLAVE;
                break;
            case x86::IrqchipRoute::Chip::IoApic:
                entry.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
                break;
        }
        entry.u.irqchip.pin = route.pin;
        entries.push_back(entry);
    }
    for (const MsiRoute& route : msi_routes_) {
        kvm_irq_routing_entry entry{};
        entry.gsi = route.gsi;
        entry.type = KVM_IRQ_ROUTING_MSI;
        entry.u.msi.address_lo = static_cast<uint32_t>(route.address);
        entry.u.msi.address_hi = static_cast<uint32_t>(route.address >> 32);
        entry.u.msi.data = route.data;
        entries.push_back(entry);
    }
    abi::FlexibleArray<abi::IrqRoutingHeader, kvm_irq_routing_entry> routing(entries.size());
    routing.header().nr = static_cast<uint32_t>(entries.size());
    std::copy(entries.begin(), entries.end(), routing.entries().begin());
    if (::ioctl(fd_.get(), abi::kSetGsiRouting, routing.data()) != 0) {
        fail_errno("KVM_SET_GSI_ROUTING ({} routes)", entries.size());
    }
}

void Vm::attach_irqfd(int event_fd, uint32_t gsi) {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<uint32_t>(event_fd);
    irqfd.gsi = gsi;
    if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) != 0) {
        fail_errno("KVM_IRQFD gsi {}", gsi);
    }
}

void Vm::detach_irqfd(int event_fd, uint32_t gsi) {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<uint32_t>(event_fd);
    irqfd.gsi = gsi;
    irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
    ::ioctl(fd_.get(), KVM_IRQFD, &irqfd);
}

namespace {

kvm_ioeventfd ioeventfd_request(int event_fd, uint64_t address, uint32_t length, bool port_io) {
    kvm_ioeventfd request{};
    request.addr = address;
    request.len = length;
    request.fd = event_fd;
    request.flags = port_io ? KVM_IOEVENTFD_FLAG_PIO : 0;
    return request;
}

}  // namespace

void Vm::attach_ioeventfd(int event_fd, uint64_t address, uint32_t length, bool port_io) {
    kvm_ioeventfd request = ioeventfd_request(event_fd, address, length, port_io);
    if (::ioctl(fd_.get(), KVM_IOEVENTFD, &request) != 0) {
        fail_errno("KVM_IOEVENTFD at {:#x}", address);
    }
}

void Vm::detach_ioeventfd(int event_fd, uint64_t address, uint32_t length, bool port_io) {
    kvm_ioeventfd request = ioeventfd_request(event_fd, address, length, port_io);
    request.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    ::ioctl(fd_.get(), KVM_IOEVENTFD, &request);
}

}  // namespace vireo::kvm
