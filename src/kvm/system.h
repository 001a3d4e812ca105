#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/unique_fd.h"

namespace vireo::kvm {

// /dev/kvm: the hypervisor itself. Opening it checks the API version and every
// capability Vireo relies on, so a host that cannot run VMs fails once, early,
// with a message that names what is missing.
class System {
public:
    // Throws vireo::Error: "/dev/kvm: no such file (is KVM enabled ...)", etc.
    static System open(const std::string& path = "/dev/kvm");

    int fd() const { return fd_.get(); }
    // KVM_CHECK_EXTENSION; 0 when absent.
    int capability(long cap) const;
    // Throws vireo::Error naming the capability when it is absent.
    void require(long cap, const char* name) const;
    uint32_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
    uint32_t max_vcpus() const;
    // Whether the in-kernel LAPIC emulates the TSC-deadline timer mode.
    bool has_tsc_deadline_timer() const;

    // Whether the host CPU has hardware virtualization (the vmx or svm flag in
    // /proc/cpuinfo). A KVM without it (a software-assisted one such as PVM,
    // running inside a cloud VM) opens and runs guests written for it, but
    // not an unmodified Linux or Windows kernel.
    static bool cpu_has_hardware_virtualization(std::string_view cpuinfo);
    static bool host_has_hardware_virtualization();

private:
    explicit System(UniqueFd fd) : fd_(std::move(fd)) {}

    UniqueFd fd_;
    uint32_t vcpu_mmap_size_ = 0;
};

}  // namespace vireo::kvm
