#include "devices/legacy/debug_exit.h"

#include <algorithm>

#include "base/error.h"

namespace vireo {

DebugExit::DebugExit(ExitCallback on_exit) : on_exit_(std::move(on_exit)) {
    if (!on_exit_) {
        fail("debug-exit: an exit callback is required");
    }
}

void DebugExit::read(uint64_t offset, std::span<uint8_t> data) {
    if (offset >= kSize) {
        log_.warn("read at offset {:#x} beyond the 4-byte port", offset);
    }
    std::fill(data.begin(), data.end(), 0);
}

void DebugExit::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset >= kSize || data.size() > kSize) {
        log_.warn("{}-byte write at offset {:#x} ignored: the port is 4 bytes", data.size(),
                  offset);
        return;
    }
    uint32_t value = 0;
    for (size_t i = 0; i < data.size(); ++i) {
        value |= uint32_t{data[i]} << (8 * i);
    }
    on_exit_(value);
}

}  // namespace vireo
