#pragma once

// Debian 12's <linux/kvm.h> declares flexible arrays with __DECLARE_FLEX_ARRAY,
// which in C++ puts an empty struct (1 byte, padded) before the array: the
// entries move from offset 8 to 12 or 16 and the size encoded in the ioctl
// number changes, so KVM answers EINVAL. The headers of those structs are
// declared here as the kernel lays them out, with the ioctl numbers built from
// them; the entries (plain structs) still come from <linux/kvm.h>.

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace vireo::kvm::abi {

struct CpuidHeader {  // struct kvm_cpuid2
    uint32_t nent;
    uint32_t padding;
};
struct MsrsHeader {  // struct kvm_msrs
    uint32_t nmsrs;
    uint32_t pad;
};
struct IrqRoutingHeader {  // struct kvm_irq_routing
    uint32_t nr;
    uint32_t flags;
};

inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, IrqRoutingHeader);

static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);
static_assert(sizeof(kvm_irq_routing_entry) == 48);

// A header followed by `count` entries, laid out as the kernel expects.
template <typename Header, typename Entry>
class FlexibleArray {
public:
    explicit FlexibleArray(size_t count)
        : bytes_(sizeof(Header) + count * sizeof(Entry)), count_(count) {}

    Header& header() { return *reinterpret_cast<Header*>(bytes_.data()); }
    std::span<Entry> entries() {
        return {reinterpret_cast<Entry*>(bytes_.data() + sizeof(Header)), count_};
    }
    void* data() { return bytes_.data(); }

private:
    std::vector<uint8_t> bytes_;
    size_t count_;
};

}  // namespace vireo::kvm::abi
