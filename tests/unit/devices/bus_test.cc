#include "devices/bus.h"

#include <gtest/gtest.h>

#include <vector>

#include "base/error.h"

namespace vireo {
namespace {

// Records the offsets it sees and answers reads with the low byte of the offset.
class RecordingDevice : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        for (auto& byte : data) {
            byte = static_cast<uint8_t>(offset);
        }
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        writes.push_back({offset, data.size()});
    }
    std::vector<std::pair<uint64_t, size_t>> writes;
};

TEST(Bus, DispatchesWithOffsetsRelativeToTheRange) {
    Bus bus("pio");
    auto device = std::make_shared<RecordingDevice>();
    bus.insert(0x3f8, 8, device);
    uint8_t value = 0;
    EXPECT_TRUE(bus.read(0x3fd, {&value, 1}));
    EXPECT_EQ(value, 5);
    uint8_t out[2] = {1, 2};
    EXPECT_TRUE(bus.write(0x3fe, out));
    ASSERT_EQ(device->writes.size(), 1u);
    EXPECT_EQ(device->writes[0], (std::pair<uint64_t, size_t>{6, 2}));
}

TEST(Bus, UnclaimedAddressesReadAllOnes) {
    Bus bus("pio");
    bus.insert(0x3f8, 8, std::make_shared<RecordingDevice>());
    uint32_t value = 0;
    EXPECT_FALSE(bus.read(0x3f7, {reinterpret_cast<uint8_t*>(&value), 4}));
    EXPECT_EQ(value, 0xffffffffu);
    // An access that straddles the end of a range belongs to nobody.
    EXPECT_FALSE(bus.read(0x3fe, {reinterpret_cast<uint8_t*>(&value), 4}));
}

TEST(Bus, RefusesOverlapsAndSupportsRemoval) {
    Bus bus("mmio");
    bus.insert(0x1000, 0x1000, std::make_shared<RecordingDevice>());
    EXPECT_THROW(bus.insert(0x1800, 0x1000, std::make_shared<RecordingDevice>()), Error);
    EXPECT_THROW(bus.insert(0x0800, 0x1000, std::make_shared<RecordingDevice>()), Error);
    EXPECT_THROW(bus.insert(0x5000, 0, std::make_shared<RecordingDevice>()), Error);
    bus.insert(0x2000, 0x1000, std::make_shared<RecordingDevice>());
    EXPECT_TRUE(bus.remove(0x1000));
    EXPECT_FALSE(bus.remove(0x1000));
    bus.insert(0x1800, 0x800, std::make_shared<RecordingDevice>());
}

}  // namespace
}  // namespace vireo
