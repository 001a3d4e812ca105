#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "devices/virtio/virtqueue.h"
#include "memory/guest_memory.h"

namespace vireo {

// A descriptor chain's buffers taken as one byte string, as devices read and
// write them: the chain was validated, but a copy still checks guest RAM.

uint64_t total_length(std::span<const GuestBuffer> buffers);
// The bytes [skip, skip + length) of `buffers`, as buffers (empty ones left
// out). The range must lie within the buffers.
std::vector<GuestBuffer> slice(std::span<const GuestBuffer> buffers, uint64_t skip,
                               uint64_t length);
// Copies the first out.size() bytes of `buffers` (which hold at least that many).
bool gather(const GuestMemory& memory, std::span<const GuestBuffer> buffers,
            std::span<uint8_t> out);
// Copies `bytes` into `buffers` from byte `skip` on; returns how many fit.
uint32_t scatter(const GuestMemory& memory, std::span<const GuestBuffer> buffers,
                 std::span<const uint8_t> bytes, uint64_t skip = 0);

}  // namespace vireo
