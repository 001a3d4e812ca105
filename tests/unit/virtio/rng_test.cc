#include "devices/virtio/rng.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "base/byte_size.h"
#include "devices/virtio/virtio_spec.h"
#include "driver_queue.h"

namespace vireo {
namespace {

using testing::DriverQueue;

class CountingInterrupt : public VirtioInterrupt {
public:
    void signal_used(uint16_t queue) override { used.push_back(queue); }
    void signal_config_change() override { ++config_changes; }
    std::vector<uint16_t> used;
    int config_changes = 0;
};

constexpr uint64_t kData = 0x100000;

bool all_zero(const GuestMemory& memory, uint64_t address, uint64_t length) {
    std::vector<uint8_t> bytes(length);
    EXPECT_TRUE(memory.read(address, bytes.data(), length));
    return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

TEST(VirtioRng, DescribesItself) {
    VirtioRng rng;
    EXPECT_EQ(rng.device_type(), virtio::kDeviceEntropy);
    EXPECT_EQ(rng.queue_count(), 1);
    EXPECT_EQ(rng.device_features(), 0u);
    EXPECT_EQ(rng.config_size(), 0u);
}

TEST(VirtioRng, FillsWritableBuffersAndInterrupts) {
    GuestMemory memory = GuestMemory::create({{0, 16 * MiB}});
    DriverQueue driver(memory, 16, 0x10000);
    std::vector<Virtqueue> queues;
    queues.emplace_back(memory, driver.config(), 0);
    CountingInterrupt interrupt;
    VirtioRng rng;
    rng.activate(VirtioActivation{memory, 0, queues, interrupt});

    uint16_t first = driver.add_chain({{kData, 64, true}});
    uint16_t second = driver.add_chain({{kData + 0x1000, 16, true}, {kData + 0x2000, 48, true}});
    driver.make_available(first);
    driver.make_available(second);
    rng.process_queue(0);

    ASSERT_EQ(driver.used_idx(), 2);
    EXPECT_EQ(driver.used(0).id, first);
    EXPECT_EQ(driver.used(0).len, 64u);
    EXPECT_EQ(driver.used(1).id, second);
    EXPECT_EQ(driver.used(1).len, 64u);
    // 64 random bytes are all zero with probability 2^-512.
    EXPECT_FALSE(all_zero(memory, kData, 64));
    EXPECT_FALSE(all_zero(memory, kData + 0x2000, 48));
    EXPECT_EQ(interrupt.used, (std::vector<uint16_t>{0}));  // one interrupt for the batch

    rng.process_queue(0);  // a spurious kick: nothing to do, no interrupt
    EXPECT_EQ(interrupt.used.size(), 1u);
    rng.reset();
}

TEST(VirtioRng, CapsTheBytesPerRequest) {
    GuestMemory memory = GuestMemory::create({{0, 16 * MiB}});
    DriverQueue driver(memory, 16, 0x10000);
    std::vector<Virtqueue> queues;
    queues.emplace_back(memory, driver.config(), 0);
    CountingInterrupt interrupt;
    VirtioRng rng;
    rng.activate(VirtioActivation{memory, 0, queues, interrupt});

    driver.make_available(driver.add_chain({{kData, 16, true}, {kData + 0x1000, 1 << 20, true}}));
    rng.process_queue(0);
    ASSERT_EQ(driver.used_idx(), 1);
    EXPECT_EQ(driver.used(0).len, VirtioRng::kMaxBytesPerRequest);
    // Nothing past the cap was touched.
    EXPECT_TRUE(all_zero(memory, kData + 0x1000 + VirtioRng::kMaxBytesPerRequest - 16, 4096));
}

}  // namespace
}  // namespace vireo
