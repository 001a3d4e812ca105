#pragma once

#include <cstdint>
#include <span>
#include <variant>
#include <vector>

namespace vireo::kvm {

// Why KVM_RUN returned, in the VMM's terms. Data spans point into the vCPU's
// shared kvm_run page and are valid until the next run().

// Port I/O; `data` holds `count` items of `size` bytes (count > 1 for rep ins/outs).
struct IoExit {
    uint16_t port;
    uint8_t size;
    uint32_t count;
    bool is_write;
    std::span<uint8_t> data;
};
struct MmioExit {
    uint64_t address;
    bool is_write;
    std::span<uint8_t> data;
};
struct HaltExit {};
// Triple fault or similar: the guest reset itself.
struct ShutdownExit {};
// KVM could not continue (here: an instruction its emulator does not handle).
struct InternalErrorExit {
    uint32_t suberror;
    std::vector<uint64_t> data;
};
struct FailEntryExit {
    uint64_t hardware_reason;
};
struct SystemEventExit {
    uint32_t type;
};
// A signal ended KVM_RUN (pause/stop asked for, or immediate_exit was set).
struct InterruptedExit {};
struct UnknownExit {
    uint32_t reason;
};

using VcpuExit = std::variant<IoExit, MmioExit, HaltExit, ShutdownExit, InternalErrorExit,
                              FailEntryExit, SystemEventExit, InterruptedExit, UnknownExit>;

}  // namespace vireo::kvm
