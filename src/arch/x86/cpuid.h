#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vireo::x86 {

// One CPUID leaf/subleaf as KVM describes it (kvm_cpuid_entry2 without KVM).
struct CpuidEntry {
    uint32_t function = 0;
    uint32_t index = 0;
    uint32_t flags = 0;  // KVM_CPUID_FLAG_SIGNIFCANT_INDEX etc., passed through
    uint32_t eax = 0;
    uint32_t ebx = 0;
    uint32_t ecx = 0;
    uint32_t edx = 0;
};

// The CPUID a given vCPU sees: the host's supported entries with the topology
// of `vcpu_count` cores in one socket and this vCPU's APIC ID.
std::vector<CpuidEntry> vcpu_cpuid(std::span<const CpuidEntry> supported, uint32_t vcpu_index,
                                   uint32_t vcpu_count);

}  // namespace vireo::x86
