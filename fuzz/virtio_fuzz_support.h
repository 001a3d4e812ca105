#pragma once

// What the virtio device fuzzers share: a small guest RAM with a hole, the
// way they pick descriptor addresses in it, an interrupt that goes nowhere,
// and silent logging (a device logs what the guest got wrong).
#include <fuzzer/FuzzedDataProvider.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

namespace vireo::fuzz {

// 64 KiB of RAM at 0 (rings in the first 4 KiB, data after) and 4 KiB at 1 MiB.
inline constexpr uint64_t kLowSize = 0x10000;
inline constexpr uint64_t kHighStart = 0x100000;
inline constexpr uint64_t kHighSize = 0x1000;
inline constexpr uint64_t kDataStart = 0x1000;

// The RAM, zeroed for the next input.
inline GuestMemory& fresh_memory() {
    static GuestMemory ram = GuestMemory::create({{0, kLowSize}, {kHighStart, kHighSize}});
    for (auto [start, size] :
         {std::pair{uint64_t{0}, kLowSize}, std::pair{kHighStart, kHighSize}}) {
        auto bytes = ram.span(start, size);
        std::fill(bytes->begin(), bytes->end(), uint8_t{0});  // memset: no syscall per input
    }
    return ram;
}

// The input's last bytes become the data area (what does not fit is dropped).
inline void fill_data_area(GuestMemory& ram, const std::vector<uint8_t>& bytes) {
    ram.write(kDataStart, bytes.data(), std::min<size_t>(bytes.size(), kLowSize - kDataStart));
}

// Mostly the data area, sometimes the rings, RAM's edges or anything at all.
inline uint64_t pick_address(FuzzedDataProvider& input) {
    switch (input.ConsumeIntegralInRange(0, 7)) {
        case 0:
            return input.ConsumeIntegral<uint64_t>();
        case 1:
            return kHighStart + input.ConsumeIntegralInRange<uint64_t>(0, kHighSize);
        case 2:
            return input.ConsumeIntegralInRange<uint64_t>(0, kDataStart);
        default:
            return input.ConsumeIntegralInRange<uint64_t>(kDataStart, kLowSize);
    }
}

struct NullInterrupt : VirtioInterrupt {
    void signal_used(uint16_t) override {}
    void signal_config_change() override {}
};

inline void silence_logging() {
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>()));
}

}  // namespace vireo::fuzz
