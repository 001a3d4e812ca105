// libFuzzer target for virtio-net with two queue pairs (multiqueue): the
// input picks the negotiated features, chains on the receive, transmit and
// control queues (descriptor addresses,
// lengths and flags) in a small guest RAM, the frames the wire delivers, and
// the order the queues are served in; its remaining bytes fill the data area
// (frames to send, control commands). The wire is an in-memory backend
// standing in for the TAP (which needs CAP_NET_ADMIN and is not
// deterministic). Nothing may crash or throw, nothing outside guest RAM may
// be touched (ASan), and every frame sent must be within a frame's limits.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "base/event_fd.h"
#include "devices/virtio/net.h"
#include "devices/virtio/virtio_spec.h"
#include "memory/guest_memory.h"
#include "virtio_fuzz_support.h"

namespace {

using vireo::fuzz::pick_address;

constexpr uint16_t kQueueSize = 16;
// Two queue pairs, then the control queue. desc; avail +0x100; used +0x200.
constexpr uint64_t kRingBase[5] = {0x0, 0x300, 0x600, 0x900, 0xc00};

class MemoryWire : public vireo::NetBackend {
public:
    int fd() const override { return event_.fd(); }
    void set_offloads(unsigned) override {}
    void set_enabled(bool) override {}
    size_t read(std::span<uint8_t> frame) override {
        if (incoming.empty()) {
            return 0;
        }
        std::vector<uint8_t> next = std::move(incoming.front());
        incoming.pop_front();
        size_t length = std::min(next.size(), frame.size());
        std::copy_n(next.begin(), length, frame.begin());
        return length;
    }
    bool write(std::span<const iovec> frame) override {
        size_t length = 0;
        for (const iovec& part : frame) {
            length += part.iov_len;
        }
        if (length < vireo::NetBackend::kHeaderBytes + 14 ||
            length > vireo::VirtioNet::kMaxFrameBytes) {
            std::abort();  // the device sent a frame it should have dropped
        }
        return true;
    }
    std::deque<std::vector<uint8_t>> incoming;

private:
    vireo::EventFd event_;
};

uint32_t pick_length(FuzzedDataProvider& input) {
    switch (input.ConsumeIntegralInRange(0, 4)) {
        case 0:
            return input.ConsumeIntegral<uint32_t>();
        case 1:
            return 12;  // a header
        case 2:
            return 1;  // an ack
        default:
            return input.ConsumeIntegralInRange<uint32_t>(0, 2048);
    }
}

void add_chains(FuzzedDataProvider& input, vireo::GuestMemory& ram, uint64_t base) {
    uint16_t next_desc = 0;
    uint16_t heads = 0;
    while (next_desc < kQueueSize && input.ConsumeBool()) {
        uint16_t head = next_desc;
        auto count = input.ConsumeIntegralInRange<uint16_t>(1, 4);
        for (uint16_t i = 0; i < count && next_desc < kQueueSize; ++i, ++next_desc) {
            bool last = i + 1 == count || next_desc + 1 == kQueueSize;
            vireo::virtio::VirtqDesc desc{pick_address(input), pick_length(input), 0, 0};
            if (input.ConsumeBool()) {
                desc.flags |= vireo::virtio::kDescFlagWrite;
            }
            if (!last) {
                desc.flags |= vireo::virtio::kDescFlagNext;
                desc.next = static_cast<uint16_t>(next_desc + 1);
            }
            ram.write_object(base + 16 * uint64_t{next_desc}, desc);
        }
        ram.write_object(base + 0x100 + vireo::virtio::kAvailRingOffset + 2 * uint64_t{heads},
                         head);
        ++heads;
    }
    ram.write_object(base + 0x100 + vireo::virtio::kAvailIdxOffset, heads);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    vireo::fuzz::silence_logging();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider input(data, size);
    vireo::GuestMemory& ram = vireo::fuzz::fresh_memory();

    std::vector<std::unique_ptr<vireo::NetBackend>> wire;
    std::vector<MemoryWire*> tap_queues;
    for (int i = 0; i < 2; ++i) {
        auto queue = std::make_unique<MemoryWire>();
        tap_queues.push_back(queue.get());
        wire.push_back(std::move(queue));
    }
    vireo::VirtioNet net(std::move(wire), {0x02, 0x76, 0x69, 0, 0, 1});
    uint64_t features = (input.ConsumeIntegral<uint64_t>() & net.device_features()) |
                        uint64_t{1} << vireo::virtio::kFeatureVersion1;
    for (uint64_t base : kRingBase) {
        add_chains(input, ram, base);
    }
    auto frame_count = input.ConsumeIntegralInRange<size_t>(0, 4);
    for (size_t i = 0; i < frame_count; ++i) {
        tap_queues[input.ConsumeIntegralInRange<size_t>(0, 1)]->incoming.push_back(
            input.ConsumeBytes<uint8_t>(input.ConsumeIntegralInRange<size_t>(0, 6000)));
    }
    std::vector<uint8_t> order = input.ConsumeBytes<uint8_t>(8);
    std::vector<uint8_t> bytes = input.ConsumeRemainingBytes<uint8_t>();
    vireo::fuzz::fill_data_area(ram, bytes);

    std::vector<vireo::Virtqueue> queues;
    for (uint64_t base : kRingBase) {
        queues.emplace_back(
            ram, vireo::VirtqueueConfig{kQueueSize, base, base + 0x100, base + 0x200}, features);
    }
    vireo::fuzz::NullInterrupt interrupt;
    net.activate(vireo::VirtioActivation{ram, features, queues, interrupt});
    for (uint8_t step : order) {
        if (step % 7 == 6) {
            net.set_link(!net.link_up());  // the cable unplugged or plugged back between steps
        } else {
            net.process_queue(static_cast<uint16_t>(step % 7));  // 5 is no queue
        }
    }
    for (vireo::Virtqueue& queue : queues) {
        (void)queue.needs_interrupt();
    }
    net.reset();
    return 0;
}
