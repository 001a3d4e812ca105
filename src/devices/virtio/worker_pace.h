#pragma once

#include <chrono>

namespace vireo {

// How a device worker waits for the guest's next request (docs/vmm.md,
// "Device workers"): by polling where the VMM has a CPU to spare (PollWindow),
// by napping where it shares its CPUs with the vCPUs (NapWindow).
struct WorkerPace {
    std::chrono::nanoseconds poll_max{};  // zero: never polls
    bool naps = false;
};

// The pace of a VM's device workers: polling up to `poll_max` where the VMM
// may use more CPUs than the VM has vCPUs; napping where it may not, as
// polling would then take CPU time from the vCPUs, among them the one that
// makes the next request.
WorkerPace device_pace(std::chrono::nanoseconds poll_max, unsigned vcpus, unsigned usable_cpus);

}  // namespace vireo
