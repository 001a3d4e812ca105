// libFuzzer target for the split virtqueue: the input picks a queue size, the
// negotiated features and where the three ring parts are, then its remaining
// bytes become guest RAM (descriptor table, rings, indirect tables and all).
// The device side pops and pushes until the queue is empty or broken. Nothing
// may crash, and every buffer a chain hands out must lie inside guest RAM:
// ASan catches any host access outside the mapping, the explicit check below
// catches a buffer that escaped validation.
#include <fuzzer/FuzzedDataProvider.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "devices/virtio/virtio_spec.h"
#include "devices/virtio/virtqueue.h"
#include "memory/guest_memory.h"

namespace {

// Small RAM with a hole: 64 KiB at 0 and 4 KiB at 1 MiB.
constexpr uint64_t kLowSize = 0x10000;
constexpr uint64_t kHighStart = 0x100000;
constexpr uint64_t kHighSize = 0x1000;

vireo::GuestMemory& memory() {
    static vireo::GuestMemory ram =
        vireo::GuestMemory::create({{0, kLowSize}, {kHighStart, kHighSize}});
    return ram;
}

// Mostly addresses near guest RAM, sometimes anything at all.
uint64_t pick_address(FuzzedDataProvider& input) {
    switch (input.ConsumeIntegralInRange(0, 3)) {
        case 0:
            return input.ConsumeIntegral<uint64_t>();
        case 1:
            return kHighStart + input.ConsumeIntegralInRange<uint64_t>(0, kHighSize);
        default:
            return input.ConsumeIntegralInRange<uint64_t>(0, kLowSize) & ~uint64_t{1};
    }
}

void check_inside(const vireo::GuestMemory& ram, const std::vector<vireo::GuestBuffer>& buffers) {
    for (const auto& buffer : buffers) {
        auto bytes = ram.span(buffer.address, buffer.length);
        if (!bytes) {
            std::abort();  // a buffer outside guest RAM got through
        }
        // Touch every byte, as a device would.
        volatile uint8_t sink = 0;
        for (uint8_t byte : *bytes) {
            sink = sink ^ byte;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    auto logger =
        std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
    spdlog::set_default_logger(logger);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider input(data, size);
    vireo::GuestMemory& ram = memory();

    vireo::VirtqueueConfig config;
    config.size = input.ConsumeBool()
                      ? static_cast<uint16_t>(1u << input.ConsumeIntegralInRange(0, 8))
                      : input.ConsumeIntegral<uint16_t>();
    uint64_t features = 0;
    if (input.ConsumeBool()) {
        features |= uint64_t{1} << vireo::virtio::kFeatureIndirectDesc;
    }
    if (input.ConsumeBool()) {
        features |= uint64_t{1} << vireo::virtio::kFeatureEventIdx;
    }
    config.desc_table = pick_address(input);
    config.avail_ring = pick_address(input);
    config.used_ring = pick_address(input);
    uint64_t max_bytes = input.ConsumeBool() ? vireo::Virtqueue::kDefaultMaxChainBytes
                                             : input.ConsumeIntegral<uint32_t>();
    uint32_t written_seed = input.ConsumeIntegral<uint32_t>();

    // The rest is guest RAM, low region first.
    std::vector<uint8_t> bytes = input.ConsumeRemainingBytes<uint8_t>();
    auto low = ram.span(0, kLowSize);
    auto high = ram.span(kHighStart, kHighSize);
    std::memset(low->data(), 0, low->size());
    std::memset(high->data(), 0, high->size());
    size_t low_part = std::min<size_t>(bytes.size(), kLowSize);
    std::copy_n(bytes.begin(), low_part, low->begin());
    std::copy_n(bytes.begin() + static_cast<ptrdiff_t>(low_part),
                std::min<size_t>(bytes.size() - low_part, kHighSize), high->begin());

    vireo::Virtqueue queue(ram, config, features, max_bytes);
    // More than 2^16 pops would only repeat a wrapped ring.
    for (int round = 0; round < 70000; ++round) {
        auto chain = queue.pop();
        if (!chain) {
            break;
        }
        check_inside(ram, chain->readable);
        check_inside(ram, chain->writable);
        queue.push(chain->head, written_seed * static_cast<uint32_t>(round));
        if (round % 3 == 0) {
            queue.needs_interrupt();
        }
    }
    queue.needs_interrupt();
    if (queue.fault()) {
        // The log line's text must format for every kind of fault.
        (void)vireo::to_string(queue.fault()->error);
    }
    return 0;
}
