#include "kvm/system.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <fstream>
#include <sstream>
#include <system_error>

#include "base/error.h"

namespace vireo::kvm {

namespace {

struct RequiredCapability {
    long cap;
    const char* name;
};

// What the VMM uses unconditionally; everything else is optional.
constexpr RequiredCapability kRequired[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
    {KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
};

}  // namespace

System System::open(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) {
        int saved = errno;
        if (saved == ENOENT) {
            fail_host(
                "{}: no such device (KVM is not available: load kvm_intel or kvm_amd, or enable "
                "nested virtualization; scripts/emulated-kvm runs commands inside an emulated "
                "KVM)",
                path);
        }
        if (saved == EACCES || saved == EPERM) {
            fail_host("{}: permission denied (run as root or join the 'kvm' group)", path);
        }
        fail_host("{}: cannot open: {}", path, std::generic_category().message(saved));
    }
    int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        fail_host("{}: KVM API version {} (Vireo needs {})", path, version, KVM_API_VERSION);
    }
    System system(std::move(fd));
    for (const auto& required : kRequired) {
        system.require(required.cap, required.name);
    }
    int size = ::ioctl(system.fd(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size <= 0) {
        fail_errno("{}: KVM_GET_VCPU_MMAP_SIZE", path);
    }
    system.vcpu_mmap_size_ = static_cast<uint32_t>(size);
    return system;
}

int System::capability(long cap) const {
    int result = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    return result < 0 ? 0 : result;
}

void System::require(long cap, const char* name) const {
    if (capability(cap) <= 0) {
        fail_host("KVM on this host lacks {}, which Vireo needs", name);
    }
}

bool System::has_tsc_deadline_timer() const {
    return capability(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
}

uint32_t System::max_vcpus() const {
    int max = capability(KVM_CAP_MAX_VCPUS);
    return max > 0 ? static_cast<uint32_t>(max)
                   : static_cast<uint32_t>(capability(KVM_CAP_NR_VCPUS));
}

bool System::cpu_has_hardware_virtualization(std::string_view cpuinfo) {
    // Every processor's "flags" line is the same; the first one decides.
    size_t at = 0;
    while (at < cpuinfo.size()) {
        size_t end = cpuinfo.find('\n', at);
        std::string_view line = cpuinfo.substr(at, end == std::string_view::npos ? end : end - at);
        at = end == std::string_view::npos ? cpuinfo.size() : end + 1;
        if (!line.starts_with("flags") || line.find(':') == std::string_view::npos) {
            continue;
        }
        std::istringstream flags{std::string(line.substr(line.find(':') + 1))};
        for (std::string flag; flags >> flag;) {
            if (flag == "vmx" || flag == "svm") {
                return true;
            }
        }
        return false;
    }
    return false;
}

bool System::host_has_hardware_virtualization() {
    std::ifstream file("/proc/cpuinfo");
    std::stringstream text;
    text << file.rdbuf();
    return cpu_has_hardware_virtualization(text.str());
}

}  // namespace vireo::kvm
