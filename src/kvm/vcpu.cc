#include "kvm/vcpu.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cstring>

#include "base/error.h"
#include "kvm/kvm_abi.h"

namespace vireo::kvm {

namespace {

kvm_segment to_kvm(const x86::Segment& segment) {
    kvm_segment out{};
    out.base = segment.base;
    out.limit = segment.limit;
    out.selector = segment.selector;
    out.type = segment.type;
    out.present = segment.present;
    out.dpl = segment.dpl;
    out.db = segment.db;
    out.s = segment.s;
    out.l = segment.l;
    out.g = segment.g;
    out.unusable = segment.present ? 0 : 1;
    return out;
}

// MSR numbers the boot state sets.
constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
constexpr uint64_t kMiscEnableFastStrings = 1;

// LAPIC register page offsets and LVT delivery modes (Intel SDM vol. 3, 10.5.1).
constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kApicDeliveryExtInt = 0x7 << 8;
constexpr uint32_t kApicDeliveryNmi = 0x4 << 8;
constexpr uint32_t kApicDeliveryModeMask = 0x7 << 8;

}  // namespace

Vcpu::Vcpu(const Vm& vm, uint32_t index) : index_(index) {
    int fd = ::ioctl(vm.fd(), KVM_CREATE_VCPU, index);
    if (fd < 0) {
        fail_errno("KVM_CREATE_VCPU {}", index);
    }
    fd_.reset(fd);
    run_size_ = vm.system().vcpu_mmap_size();
    void* run = ::mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (run == MAP_FAILED) {
        fail_errno("mmap of vCPU {} run area", index);
    }
    run_ = static_cast<kvm_run*>(run);
}

Vcpu::~Vcpu() {
    if (run_ != nullptr) {
        ::munmap(run_, run_size_);
    }
}

VcpuExit Vcpu::run() {
    if (::ioctl(fd_.get(), KVM_RUN, 0) != 0) {
        if (errno == EINTR || errno == EAGAIN) {
            return InterruptedExit{};
        }
        fail_errno("KVM_RUN on vCPU {}", index_);
    }
    auto* base = reinterpret_cast<uint8_t*>(run_);
    switch (run_->exit_reason) {
        case KVM_EXIT_IO: {
            uint64_t bytes = uint64_t{run_->io.size} * run_->io.count;
            if (run_->io.data_offset + bytes > run_size_) {
                return UnknownExit{run_->exit_reason};
            }
            return IoExit{run_->io.port, run_->io.size, run_->io.count,
                          run_->io.direction == KVM_EXIT_IO_OUT,
                          std::span<uint8_t>(base + run_->io.data_offset, bytes)};
        }
        case KVM_EXIT_MMIO:
            return MmioExit{
                run_->mmio.phys_addr, run_->mmio.is_write != 0,
                std::span<uint8_t>(run_->mmio.data, std::min<uint32_t>(run_->mmio.len, 8))};
        case KVM_EXIT_HLT:
            return HaltExit{};
        case KVM_EXIT_SHUTDOWN:
            return ShutdownExit{};
        case KVM_EXIT_INTERNAL_ERROR: {
            InternalErrorExit exit{run_->internal.suberror, {}};
            uint32_t count = std::min<uint32_t>(run_->internal.ndata, 16);
            exit.data.assign(run_->internal.data, run_->internal.data + count);
            return exit;
        }
        case KVM_EXIT_FAIL_ENTRY:
            return FailEntryExit{run_->fail_entry.hardware_entry_failure_reason};
        case KVM_EXIT_SYSTEM_EVENT:
            return SystemEventExit{run_->system_event.type};
        case KVM_EXIT_INTR:
            return InterruptedExit{};
        default:
            return UnknownExit{run_->exit_reason};
    }
}

void Vcpu::set_immediate_exit(bool value) {
    __atomic_store_n(&run_->immediate_exit, value ? 1 : 0, __ATOMIC_SEQ_CST);
}

void Vcpu::set_cpuid(std::span<const x86::CpuidEntry> entries) {
    abi::FlexibleArray<abi::CpuidHeader, kvm_cpuid_entry2> cpuid(entries.size());
    cpuid.header().nent = static_cast<uint32_t>(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
        kvm_cpuid_entry2& out = cpuid.entries()[i];
        out.function = entries[i].function;
        out.index = entries[i].index;
        out.flags = entries[i].flags;
        out.eax = entries[i].eax;
        out.ebx = entries[i].ebx;
        out.ecx = entries[i].ecx;
        out.edx = entries[i].edx;
    }
    if (::ioctl(fd_.get(), abi::kSetCpuid2, cpuid.data()) != 0) {
        fail_errno("KVM_SET_CPUID2 on vCPU {}", index_);
    }
}

void Vcpu::set_boot_state(const x86::BootCpuState& state) {
    kvm_sregs sregs{};
    if (::ioctl(fd_.get(), KVM_GET_SREGS, &sregs) != 0) {
        fail_errno("KVM_GET_SREGS on vCPU {}", index_);
    }
    sregs.cs = to_kvm(state.cs);
    sregs.ds = to_kvm(state.ds);
    sregs.es = to_kvm(state.es);
    sregs.fs = to_kvm(state.fs);
    sregs.gs = to_kvm(state.gs);
    sregs.ss = to_kvm(state.ss);
    sregs.tr = to_kvm(state.tr);
    sregs.ldt = to_kvm(state.ldt);
    sregs.gdt.base = state.gdt.base;
    sregs.gdt.limit = state.gdt.limit;
    sregs.idt.base = state.idt.base;
    sregs.idt.limit = state.idt.limit;
    sregs.cr0 = state.cr0;
    sregs.cr3 = state.cr3;
    sregs.cr4 = state.cr4;
    sregs.efer = state.efer;
    if (::ioctl(fd_.get(), KVM_SET_SREGS, &sregs) != 0) {
        fail_errno("KVM_SET_SREGS on vCPU {}", index_);
    }

    kvm_regs regs{};
    regs.rip = state.rip;
    regs.rsp = state.rsp;
    regs.rbp = state.rsp;
    regs.rsi = state.rsi;
    regs.rbx = state.rbx;
    regs.rflags = state.rflags;
    if (::ioctl(fd_.get(), KVM_SET_REGS, &regs) != 0) {
        fail_errno("KVM_SET_REGS on vCPU {}", index_);
    }

    kvm_fpu fpu{};
    fpu.fcw = 0x37f;     // x87 default control word
    fpu.mxcsr = 0x1f80;  // SSE exceptions masked
    if (::ioctl(fd_.get(), KVM_SET_FPU, &fpu) != 0) {
        fail_errno("KVM_SET_FPU on vCPU {}", index_);
    }

    abi::FlexibleArray<abi::MsrsHeader, kvm_msr_entry> msrs(1);
    msrs.header().nmsrs = 1;
    msrs.entries()[0].index = kMsrIa32MiscEnable;
    msrs.entries()[0].data = kMiscEnableFastStrings;
    if (::ioctl(fd_.get(), abi::kSetMsrs, msrs.data()) != 1) {
        fail_errno("KVM_SET_MSRS on vCPU {}", index_);
    }
}

void Vcpu::configure_local_apic() {
    kvm_lapic_state lapic{};
    if (::ioctl(fd_.get(), KVM_GET_LAPIC, &lapic) != 0) {
        fail_errno("KVM_GET_LAPIC on vCPU {}", index_);
    }
    auto set_delivery = [&lapic](size_t offset, uint32_t mode) {
        uint32_t value;
        std::memcpy(&value, lapic.regs + offset, sizeof(value));
        value = (value & ~kApicDeliveryModeMask) | mode;
        std::memcpy(lapic.regs + offset, &value, sizeof(value));
    };
    set_delivery(kApicLvtLint0, kApicDeliveryExtInt);
    set_delivery(kApicLvtLint1, kApicDeliveryNmi);
    if (::ioctl(fd_.get(), KVM_SET_LAPIC, &lapic) != 0) {
        fail_errno("KVM_SET_LAPIC on vCPU {}", index_);
    }
}

VcpuSnapshot Vcpu::snapshot() const {
    kvm_regs regs{};
    kvm_sregs sregs{};
    ::ioctl(fd_.get(), KVM_GET_REGS, &regs);
    ::ioctl(fd_.get(), KVM_GET_SREGS, &sregs);
    return VcpuSnapshot{regs.rip,   regs.rsp,      sregs.cr0,         sregs.cr3,   sregs.cr4,
                        sregs.efer, sregs.cs.base, sregs.cs.selector, sregs.ss.dpl};
}

std::optional<uint64_t> Vcpu::translate(uint64_t linear_address) const {
    kvm_translation translation{};
    translation.linear_address = linear_address;
    if (::ioctl(fd_.get(), KVM_TRANSLATE, &translation) != 0 || !translation.valid) {
        return std::nullopt;
    }
    return translation.physical_address;
}

std::vector<x86::CpuidEntry> supported_cpuid(const System& system) {
    // Ask with room to spare; KVM says E2BIG if that is not enough.
    for (uint32_t capacity = 128; capacity <= 4096; capacity *= 2) {
        abi::FlexibleArray<abi::CpuidHeader, kvm_cpuid_entry2> cpuid(capacity);
        cpuid.header().nent = capacity;
        if (::ioctl(system.fd(), abi::kGetSupportedCpuid, cpuid.data()) == 0) {
            std::vector<x86::CpuidEntry> entries;
            for (uint32_t i = 0; i < cpuid.header().nent; ++i) {
                const kvm_cpuid_entry2& in = cpuid.entries()[i];
                entries.push_back(
                    {in.function, in.index, in.flags, in.eax, in.ebx, in.ecx, in.edx});
            }
            return entries;
        }
        if (errno != E2BIG) {
            fail_errno("KVM_GET_SUPPORTED_CPUID");
        }
    }
    fail("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

}  // namespace vireo::kvm
