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

// The value of KVM_CPUID_FLAG_SIGNIFCANT_INDEX, which the entries this file
// adds for subleaf-indexed leaves carry.
inline constexpr uint32_t kCpuidFlagSignificantIndex = 1;

// Leaf 0x40000000 names Vireo; the host's own hypervisor leaves (KVM's, which
// Linux needs for kvm-clock) move up by kCpuidHostHypervisorShift, where
// Linux and KVM look for them too (they scan bases 0x40000000 + n * 0x100).
inline constexpr uint32_t kCpuidHypervisorBase = 0x40000000;
inline constexpr uint32_t kCpuidHostHypervisorShift = 0x100;
inline constexpr char kCpuidHypervisorSignature[] = "VireoVireoVM";

// The CPUID a given vCPU sees: the host's supported entries with the topology
// of `vcpu_count` cores in one socket, one thread each, and this vCPU's APIC
// ID (= vcpu_index):
//   leaf 1: EBX[31:24] APIC ID, EBX[23:16] = vcpu_count, HTT iff vcpu_count > 1,
//           ECX hypervisor bit set, MONITOR/MWAIT cleared (not offered),
//           TSC-deadline timer set iff tsc_deadline_timer (KVM reports it in
//           KVM_CAP_TSC_DEADLINE_TIMER, not in its supported CPUID);
//   leaf 4: EAX[31:26] = vcpu_count - 1; L1/L2 per core, L3 shared by all;
//   leaf 0xB (always; the max basic leaf is raised to it) and leaf 0x1F (if
//           the host has it): SMT level of 1 thread, core level of vcpu_count,
//           EDX = APIC ID;
//   leaf 0x40000000: kCpuidHypervisorSignature.
// Everything else (0x80000008 included) passes through unchanged.
// Throws vireo::Error for vcpu_count outside 1..kMaxVcpus or vcpu_index >= vcpu_count.
std::vector<CpuidEntry> vcpu_cpuid(std::span<const CpuidEntry> supported, uint32_t vcpu_index,
                                   uint32_t vcpu_count, bool tsc_deadline_timer);

}  // namespace vireo::x86
