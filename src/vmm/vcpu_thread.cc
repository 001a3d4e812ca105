#include "vmm/vcpu_thread.h"

#include <pthread.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/error.h"

namespace vireo {

namespace {

constexpr uint32_t kInternalErrorEmulation = 1;  // KVM_INTERNAL_ERROR_EMULATION
constexpr uint32_t kSystemEventShutdown = 1;     // KVM_SYSTEM_EVENT_SHUTDOWN
constexpr uint32_t kSystemEventReset = 2;        // KVM_SYSTEM_EVENT_RESET
constexpr size_t kMaxInstructionBytes = 15;

template <class... Handlers>
struct Overloaded : Handlers... {
    using Handlers::operator()...;
};

}  // namespace

VcpuThread::VcpuThread(std::unique_ptr<kvm::Vcpu> vcpu, Context context)
    : vcpu_(std::move(vcpu)), context_(std::move(context)) {}

VcpuThread::~VcpuThread() {
    join();
}

void VcpuThread::start() {
    thread_ = std::thread([this] { run(); });
    std::string name = fmt::format("vcpu{}", vcpu_->index());
    pthread_setname_np(thread_.native_handle(), name.c_str());
}

void VcpuThread::join() {
    if (thread_.joinable()) {
        thread_.join();
    }
}

void VcpuThread::run() {
    context_.run_control.attach(*vcpu_);
    try {
        while (context_.run_control.wait_until_runnable(*vcpu_)) {
            kvm::VcpuExit exit = vcpu_->run();
            if (!handle(exit)) {
                break;
            }
        }
    } catch (const std::exception& error) {
        context_.end_machine(MachineExit{MachineExit::Reason::VmmFailure, 0,
                                         fmt::format("vCPU {}: {}", vcpu_->index(), error.what())});
    }
    context_.run_control.detach(*vcpu_);
}

bool VcpuThread::handle(kvm::VcpuExit& exit) {
    auto end = [this](MachineExit::Reason reason, std::string detail) {
        context_.end_machine(MachineExit{reason, 0, std::move(detail)});
        return false;
    };
    return std::visit(
        Overloaded{
            [this](kvm::IoExit& io) {
                for (uint32_t i = 0; i < io.count; ++i) {
                    auto item = io.data.subspan(size_t{i} * io.size, io.size);
                    if (io.is_write) {
                        context_.pio_bus.write(io.port, item);
                    } else {
                        context_.pio_bus.read(io.port, item);
                    }
                }
                return true;
            },
            [this](kvm::MmioExit& mmio) {
                bool claimed = mmio.is_write ? context_.mmio_bus.write(mmio.address, mmio.data)
                                             : context_.mmio_bus.read(mmio.address, mmio.data);
                if (!claimed) {
                    spdlog::debug("vCPU {}: unclaimed MMIO {} at {:#x}", vcpu_->index(),
                                  mmio.is_write ? "write" : "read", mmio.address);
                }
                return true;
            },
            // The in-kernel LAPIC handles HLT; an exit here only means "run again".
            [](kvm::HaltExit&) { return true; },
            [](kvm::InterruptedExit&) { return true; },
            [&](kvm::ShutdownExit&) {
                return end(MachineExit::Reason::TripleFault, describe_position());
            },
            [&](kvm::InternalErrorExit& error) {
                std::string what = error.suberror == kInternalErrorEmulation
                                       ? "emulation failure"
                                       : fmt::format("internal error, suberror {}", error.suberror);
                return end(MachineExit::Reason::KvmFailure,
                           fmt::format("{} on {}", what, describe_position()));
            },
            [&](kvm::FailEntryExit& failure) {
                return end(MachineExit::Reason::KvmFailure,
                           fmt::format("entry failed (hardware reason {:#x}) on {}",
                                       failure.hardware_reason, describe_position()));
            },
            [&](kvm::SystemEventExit& event) {
                if (event.type == kSystemEventShutdown) {
                    return end(MachineExit::Reason::PoweredOff, "");
                }
                if (event.type == kSystemEventReset) {
                    return end(MachineExit::Reason::Reset, "");
                }
                return end(MachineExit::Reason::KvmFailure,
                           fmt::format("system event {} on {}", event.type, describe_position()));
            },
            [&](kvm::UnknownExit& unknown) {
                return end(MachineExit::Reason::KvmFailure,
                           fmt::format("unexpected exit reason {} on {}", unknown.reason,
                                       describe_position()));
            },
        },
        exit);
}

std::string VcpuThread::describe_position() {
    kvm::VcpuSnapshot state = vcpu_->snapshot();
    bool long_mode = (state.efer & (1u << 10)) != 0;  // EFER.LMA
    uint64_t linear = long_mode ? state.rip : state.cs_base + state.rip;
    std::string bytes = "unavailable";
    if (auto physical = vcpu_->translate(linear)) {
        uint8_t code[kMaxInstructionBytes];
        // Stop at the end of RAM rather than failing the whole read.
        size_t available = kMaxInstructionBytes;
        while (available > 0 && !context_.memory.read(*physical, code, available)) {
            --available;
        }
        if (available > 0) {
            bytes.clear();
            for (size_t i = 0; i < available; ++i) {
                bytes += fmt::format("{}{:02x}", i ? " " : "", code[i]);
            }
        }
    }
    return fmt::format("vCPU {} at RIP {:#x} (ring {}, {}), instruction bytes: {}", vcpu_->index(),
                       state.rip, state.privilege_level,
                       long_mode ? "long mode" : ((state.cr0 & 1) ? "protected mode" : "real mode"),
                       bytes);
}

}  // namespace vireo
