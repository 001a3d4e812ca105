#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "arch/x86/boot_cpu_state.h"
#include "arch/x86/cpuid.h"
#include "base/unique_fd.h"
#include "kvm/vcpu_exit.h"
#include "kvm/vm.h"

struct kvm_run;

namespace vireo::kvm {

// What the VMM reports when a vCPU dies: where it was and in which mode.
struct VcpuSnapshot {
    uint64_t rip;
    uint64_t rsp;
    uint64_t cr0;
    uint64_t cr3;
    uint64_t cr4;
    uint64_t efer;
    uint64_t cs_base;
    uint16_t cs_selector;
    int privilege_level;  // CPL, which the CPU keeps in SS.DPL
};

// One virtual CPU: its fd and its shared kvm_run page. Owned and run by one
// thread; set_immediate_exit() is the one call meant for other threads.
class Vcpu {
public:
    Vcpu(const Vm& vm, uint32_t index);
    Vcpu(const Vcpu&) = delete;
    Vcpu& operator=(const Vcpu&) = delete;
    ~Vcpu();

    uint32_t index() const { return index_; }

    VcpuExit run();
    // Makes the current or the next KVM_RUN return at once (with a signal to
    // kick a thread already inside it).
    void set_immediate_exit(bool value);

    void set_cpuid(std::span<const x86::CpuidEntry> entries);
    // Registers, segments, control registers and MSRs for the boot entry point.
    void set_boot_state(const x86::BootCpuState& state);
    // LINT0 as ExtINT and LINT1 as NMI, as firmware leaves them on a PC.
    void configure_local_apic();

    VcpuSnapshot snapshot() const;
    // Guest-virtual to guest-physical (KVM_TRANSLATE) in the current mode.
    std::optional<uint64_t> translate(uint64_t linear_address) const;

private:
    uint32_t index_;
    UniqueFd fd_;
    kvm_run* run_ = nullptr;
    uint32_t run_size_ = 0;
};

// The host CPUID entries KVM can give a guest (KVM_GET_SUPPORTED_CPUID).
std::vector<x86::CpuidEntry> supported_cpuid(const System& system);

}  // namespace vireo::kvm
