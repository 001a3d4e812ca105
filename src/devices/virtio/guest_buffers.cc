#include "devices/virtio/guest_buffers.h"

#include <algorithm>

namespace vireo {

uint64_t total_length(std::span<const GuestBuffer> buffers) {
    uint64_t total = 0;
    for (const GuestBuffer& buffer : buffers) {
        total += buffer.length;
    }
    return total;
}

std::vector<GuestBuffer> slice(std::span<const GuestBuffer> buffers, uint64_t skip,
                               uint64_t length) {
    std::vector<GuestBuffer> result;
    for (const GuestBuffer& buffer : buffers) {
        if (length == 0) {
            break;
        }
        if (skip >= buffer.length) {
            skip -= buffer.length;
            continue;
        }
        auto part = static_cast<uint32_t>(std::min<uint64_t>(buffer.length - skip, length));
        result.push_back({buffer.address + skip, part});
        length -= part;
        skip = 0;
    }
    return result;
}

bool gather(const GuestMemory& memory, std::span<const GuestBuffer> buffers,
            std::span<uint8_t> out) {
    size_t done = 0;
    for (const GuestBuffer& buffer : slice(buffers, 0, out.size())) {
        if (!memory.read(buffer.address, out.data() + done, buffer.length)) {
            return false;
        }
        done += buffer.length;
    }
    return done == out.size();
}

uint32_t scatter(const GuestMemory& memory, std::span<const GuestBuffer> buffers,
                 std::span<const uint8_t> bytes, uint64_t skip) {
    uint32_t done = 0;
    for (const GuestBuffer& buffer : slice(buffers, skip, bytes.size())) {
        if (!memory.write(buffer.address, bytes.data() + done, buffer.length)) {
            break;
        }
        done += buffer.length;
    }
    return done;
}

}  // namespace vireo
