#pragma once

#include <cstdint>
#include <vector>

#include "devices/bus_device.h"

namespace vireo {

// Byte and wide accesses to a device, as a vCPU's in/out would make them.
inline uint8_t inb(BusDevice& device, uint64_t offset) {
    uint8_t value = 0;
    device.read(offset, {&value, 1});
    return value;
}

inline void outb(BusDevice& device, uint64_t offset, uint8_t value) {
    device.write(offset, {&value, 1});
}

inline uint64_t in_wide(BusDevice& device, uint64_t offset, size_t width) {
    std::vector<uint8_t> bytes(width);
    device.read(offset, bytes);
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) {
        value |= uint64_t{bytes[i]} << (8 * i);
    }
    return value;
}

inline void out_wide(BusDevice& device, uint64_t offset, size_t width, uint64_t value) {
    std::vector<uint8_t> bytes(width);
    for (size_t i = 0; i < width; ++i) {
        bytes[i] = static_cast<uint8_t>(value >> (8 * i));
    }
    device.write(offset, bytes);
}

}  // namespace vireo
