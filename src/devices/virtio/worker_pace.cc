#include "devices/virtio/worker_pace.h"

namespace vireo {

WorkerPace device_pace(std::chrono::nanoseconds poll_max, unsigned vcpus, unsigned usable_cpus) {
    if (usable_cpus > vcpus) {
        return {.poll_max = poll_max, .naps = false};
    }
    return {.poll_max = {}, .naps = true};
}

}  // namespace vireo
