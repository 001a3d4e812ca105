#pragma once

#include <cstdint>
#include <span>

namespace vireo {

// Anything that answers guest port I/O or MMIO. Offsets are relative to the
// start of the range the device was inserted at; data.size() is the access
// width (1, 2, 4 or 8 bytes, little endian). Called from vCPU threads, possibly
// several at once: a device guards its own state.
class BusDevice {
public:
    virtual ~BusDevice() = default;
    virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

}  // namespace vireo
