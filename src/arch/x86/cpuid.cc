#include "arch/x86/cpuid.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo::x86 {

namespace {

constexpr uint32_t kLeafBasic = 0;
constexpr uint32_t kLeafFeatures = 1;
constexpr uint32_t kLeafCacheParameters = 4;
constexpr uint32_t kLeafTopology = 0xb;
constexpr uint32_t kLeafTopologyV2 = 0x1f;
constexpr uint32_t kHypervisorRangeEnd = kCpuidHypervisorBase + 0x10000;

constexpr uint32_t kEcxMonitor = 1u << 3;
constexpr uint32_t kEcxTscDeadline = 1u << 24;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEdxHtt = 1u << 28;

constexpr uint32_t kTopologyLevelSmt = 1;
constexpr uint32_t kTopologyLevelCore = 2;

// Leaf 0xB/0x1F subleaves: SMT (1 thread per core), core (count cores), then the
// invalid level that ends the list.
void add_topology(std::vector<CpuidEntry>& out, uint32_t function, uint32_t apic_id,
                  uint32_t count) {
    // Bits of the APIC ID that number the cores: enough for `count` IDs.
    uint32_t core_bits = static_cast<uint32_t>(std::bit_width(std::bit_ceil(count) - 1));
    out.push_back(
        {function, 0, kCpuidFlagSignificantIndex, 0, 1, (kTopologyLevelSmt << 8) | 0, apic_id});
    out.push_back({function, 1, kCpuidFlagSignificantIndex, core_bits, count,
                   (kTopologyLevelCore << 8) | 1, apic_id});
    out.push_back({function, 2, kCpuidFlagSignificantIndex, 0, 0, 2, apic_id});
}

CpuidEntry vireo_hypervisor_leaf() {
    uint32_t words[3];
    static_assert(sizeof(kCpuidHypervisorSignature) == sizeof(words) + 1);
    std::memcpy(words, kCpuidHypervisorSignature, sizeof(words));
    return {kCpuidHypervisorBase, 0, 0, kCpuidHypervisorBase, words[0], words[1], words[2]};
}

}  // namespace

std::vector<CpuidEntry> vcpu_cpuid(std::span<const CpuidEntry> supported, uint32_t vcpu_index,
                                   uint32_t vcpu_count, bool tsc_deadline_timer) {
    if (vcpu_count == 0 || vcpu_count > kMaxVcpus) {
        fail("CPUID: {} vCPUs, supported are 1 to {}", vcpu_count, kMaxVcpus);
    }
    if (vcpu_index >= vcpu_count) {
        fail("CPUID: vCPU index {} out of range for {} vCPUs", vcpu_index, vcpu_count);
    }
    const uint32_t apic_id = vcpu_index;
    bool has_topology_v2 = false;
    std::vector<CpuidEntry> out;
    for (CpuidEntry entry : supported) {
        switch (entry.function) {
            case kLeafBasic:
                entry.eax = std::max(entry.eax, kLeafTopology);
                break;
            case kLeafFeatures:
                entry.ebx = (entry.ebx & 0xffff) | (apic_id << 24) | (vcpu_count << 16);
                entry.edx = vcpu_count > 1 ? entry.edx | kEdxHtt : entry.edx & ~kEdxHtt;
                entry.ecx = (entry.ecx | kEcxHypervisor) & ~kEcxMonitor;
                entry.ecx =
                    tsc_deadline_timer ? entry.ecx | kEcxTscDeadline : entry.ecx & ~kEcxTscDeadline;
                break;
            case kLeafCacheParameters:
                if ((entry.eax & 0x1f) != 0) {  // type 0 ends the list
                    uint32_t level = (entry.eax >> 5) & 0x7;
                    uint32_t sharing = level >= 3 ? vcpu_count : 1;
                    entry.eax =
                        (entry.eax & 0x3fff) | ((sharing - 1) << 14) | ((vcpu_count - 1) << 26);
                }
                break;
            case kLeafTopology:
                continue;  // replaced below
            case kLeafTopologyV2:
                has_topology_v2 = true;
                continue;
            default:
                break;
        }
        if (entry.function >= kCpuidHypervisorBase && entry.function < kHypervisorRangeEnd) {
            if (entry.function >= kCpuidHypervisorBase + kCpuidHostHypervisorShift) {
                continue;  // would collide with the moved leaves; KVM reports none there
            }
            if (entry.function == kCpuidHypervisorBase && entry.eax >= kCpuidHypervisorBase) {
                entry.eax += kCpuidHostHypervisorShift;  // its highest leaf moves too
            }
            entry.function += kCpuidHostHypervisorShift;
        }
        out.push_back(entry);
    }
    add_topology(out, kLeafTopology, apic_id, vcpu_count);
    if (has_topology_v2) {
        add_topology(out, kLeafTopologyV2, apic_id, vcpu_count);
    }
    out.push_back(vireo_hypervisor_leaf());
    return out;
}

}  // namespace vireo::x86
