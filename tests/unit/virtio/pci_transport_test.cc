#include "devices/virtio/pci_transport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "arch/x86/layout.h"
#include "base/byte_size.h"
#include "base/error.h"
#include "base/event_fd.h"
#include "devices/bus.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_spec.h"
#include "driver_queue.h"
#include "pci/fake_interrupts.h"

namespace vireo {
namespace {

using testing::DriverQueue;
using testing::FakeIoEventRegistry;
using testing::FakeMsiController;
using Cfg = virtio::PciCommonCfg;

constexpr uint64_t kRings = 0x10000;
constexpr uint64_t kData = 0x100000;
constexpr uint64_t kVersion1 = uint64_t{1} << virtio::kFeatureVersion1;
constexpr uint16_t kConfigVector = 0;
constexpr uint16_t kQueueVector = 1;

size_t thread_count() {
    auto tasks = std::filesystem::directory_iterator("/proc/self/task");
    return static_cast<size_t>(std::distance(begin(tasks), end(tasks)));
}

bool all_zero(const GuestMemory& memory, uint64_t address, uint64_t length) {
    std::vector<uint8_t> bytes(length);
    EXPECT_TRUE(memory.read(address, bytes.data(), length));
    return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

// The guest's side: a virtio-pci driver that finds the device through ECAM,
// walks its capabilities and drives it through BAR 0, as Linux's
// virtio_pci_modern does.
class VirtioPciTest : public ::testing::Test {
protected:
    VirtioPciTest() {
        mmio.insert(x86::kPciEcamStart, x86::kPciEcamSize, std::make_shared<PciConfigMmio>(root));
    }

    void add_device(std::unique_ptr<VirtioDevice> model, IoEventRegistry* registry = nullptr) {
        device = std::make_shared<VirtioPciDevice>(std::move(model), memory, msi, registry);
        slot = root->add_device(device);
        find_capabilities();
    }
    void add_rng(IoEventRegistry* registry = nullptr) {
        add_device(std::make_unique<VirtioRng>(), registry);
    }

    template <typename T>
    T cfg_read(uint32_t reg) {
        T value{};
        mmio.read(x86::kPciEcamStart + (uint64_t{slot} << 15) + reg,
                  {reinterpret_cast<uint8_t*>(&value), sizeof(T)});
        return value;
    }
    template <typename T>
    void cfg_write(uint32_t reg, T value) {
        mmio.write(x86::kPciEcamStart + (uint64_t{slot} << 15) + reg,
                   {reinterpret_cast<const uint8_t*>(&value), sizeof(T)});
    }
    uint64_t bar0() {
        return (cfg_read<uint32_t>(0x10) & ~0xfu) | uint64_t{cfg_read<uint32_t>(0x14)} << 32;
    }
    template <typename T>
    T bar_read(uint64_t offset) {
        T value{};
        EXPECT_TRUE(mmio.read(bar0() + offset, {reinterpret_cast<uint8_t*>(&value), sizeof(T)}));
        return value;
    }
    template <typename T>
    void bar_write(uint64_t offset, T value) {
        EXPECT_TRUE(
            mmio.write(bar0() + offset, {reinterpret_cast<const uint8_t*>(&value), sizeof(T)}));
    }
    template <typename T>
    T common(size_t field) {
        return bar_read<T>(common_offset + field);
    }
    template <typename T>
    void set_common(size_t field, T value) {
        bar_write<T>(common_offset + field, value);
    }
    uint8_t status() { return common<uint8_t>(offsetof(Cfg, device_status)); }

    void find_capabilities() {
        uint8_t at = cfg_read<uint8_t>(pci::kCapabilitiesPointer);
        while (at != 0) {
            uint8_t id = cfg_read<uint8_t>(at);
            if (id == pci::kCapabilityMsix) {
                msix_cap = at;
            } else if (id == pci::kCapabilityVendor) {
                uint8_t type = cfg_read<uint8_t>(at + 3);
                EXPECT_EQ(cfg_read<uint8_t>(at + 4), 0) << "every structure is in BAR 0";
                uint32_t offset = cfg_read<uint32_t>(at + 8);
                cap_types.push_back(type);
                if (type == virtio::kPciCapCommonCfg) {
                    common_offset = offset;
                    EXPECT_GE(cfg_read<uint32_t>(at + 12), sizeof(Cfg));
                } else if (type == virtio::kPciCapNotifyCfg) {
                    notify_offset = offset;
                    notify_multiplier = cfg_read<uint32_t>(at + 16);
                } else if (type == virtio::kPciCapIsrCfg) {
                    isr_offset = offset;
                } else if (type == virtio::kPciCapPciCfg) {
                    window_cap = at;
                }
            }
            at = cfg_read<uint8_t>(at + 1);
        }
    }

    // MSI-X on, vector 0 for configuration changes, vector 1 for the queue.
    void enable_msix() {
        for (uint16_t vector = 0; vector < 2; ++vector) {
            uint64_t entry = VirtioPciDevice::kMsixTableOffset + 16 * vector;
            bar_write<uint32_t>(entry, 0xfee0'0000);
            bar_write<uint32_t>(entry + 4, 0);
            bar_write<uint32_t>(entry + 8, 0x30 + vector);
            bar_write<uint32_t>(entry + 12, 0);  // unmask
        }
        cfg_write<uint16_t>(msix_cap + 2, Msix::kControlEnable);
    }

    // Virtio 1.x, 3.1.1, in order, up to FEATURES_OK. Returns the status read back.
    uint8_t negotiate(uint64_t features) {
        set_common<uint8_t>(offsetof(Cfg, device_status), 0);
        EXPECT_EQ(status(), 0);
        set_common<uint8_t>(offsetof(Cfg, device_status), virtio::kStatusAcknowledge);
        set_common<uint8_t>(offsetof(Cfg, device_status),
                            virtio::kStatusAcknowledge | virtio::kStatusDriver);
        for (uint32_t select = 0; select < 2; ++select) {
            set_common<uint32_t>(offsetof(Cfg, driver_feature_select), select);
            set_common<uint32_t>(offsetof(Cfg, driver_feature),
                                 static_cast<uint32_t>(features >> (32 * select)));
        }
        set_common<uint8_t>(offsetof(Cfg, device_status), virtio::kStatusAcknowledge |
                                                              virtio::kStatusDriver |
                                                              virtio::kStatusFeaturesOk);
        return status();
    }

    void setup_queue(const DriverQueue& queue, uint16_t size) {
        set_common<uint16_t>(offsetof(Cfg, queue_select), 0);
        set_common<uint16_t>(offsetof(Cfg, queue_size), size);
        set_common<uint16_t>(offsetof(Cfg, queue_msix_vector), kQueueVector);
        VirtqueueConfig config = queue.config();
        for (auto [field, address] : {std::pair{offsetof(Cfg, queue_desc), config.desc_table},
                                      std::pair{offsetof(Cfg, queue_driver), config.avail_ring},
                                      std::pair{offsetof(Cfg, queue_device), config.used_ring}}) {
            set_common<uint32_t>(field, static_cast<uint32_t>(address));
            set_common<uint32_t>(field + 4, static_cast<uint32_t>(address >> 32));
        }
        set_common<uint16_t>(offsetof(Cfg, queue_enable), 1);
    }

    // The whole bring-up a driver does; leaves the device running.
    void bring_up(const DriverQueue& queue, uint64_t features = kVersion1) {
        enable_msix();
        ASSERT_NE(negotiate(features) & virtio::kStatusFeaturesOk, 0);
        set_common<uint16_t>(offsetof(Cfg, config_msix_vector), kConfigVector);
        setup_queue(queue, 16);
        set_common<uint8_t>(offsetof(Cfg, device_status),
                            virtio::kStatusAcknowledge | virtio::kStatusDriver |
                                virtio::kStatusFeaturesOk | virtio::kStatusDriverOk);
    }

    void kick(uint16_t queue = 0) {
        uint16_t notify_off = common<uint16_t>(offsetof(Cfg, queue_notify_off));
        bar_write<uint16_t>(notify_offset + uint64_t{notify_off} * notify_multiplier, queue);
    }

    GuestMemory memory = GuestMemory::create({{0, 16 * MiB}});
    Bus mmio{"mmio"};
    FakeMsiController msi;
    std::shared_ptr<PciRoot> root =
        std::make_shared<PciRoot>(mmio, x86::kPciMmioStart, x86::kPciMmioSize);
    std::shared_ptr<VirtioPciDevice> device;
    uint8_t slot = 0;
    uint8_t msix_cap = 0;
    uint8_t window_cap = 0;
    std::vector<uint8_t> cap_types;
    uint64_t common_offset = 0;
    uint64_t notify_offset = 0;
    uint32_t notify_multiplier = 0;
    uint64_t isr_offset = 0;
};

TEST_F(VirtioPciTest, PresentsAModernVirtioFunction) {
    add_rng();
    EXPECT_EQ(cfg_read<uint16_t>(pci::kVendorId), 0x1af4);
    EXPECT_EQ(cfg_read<uint16_t>(pci::kDeviceId), 0x1044);  // 0x1040 + entropy
    EXPECT_EQ(cfg_read<uint8_t>(pci::kRevisionId), 1);
    EXPECT_GE(cfg_read<uint16_t>(pci::kSubsystemId), 0x40);
    EXPECT_EQ(cfg_read<uint32_t>(0x08) >> 8, 0xff0000u);
    EXPECT_EQ(cfg_read<uint8_t>(pci::kInterruptPin), 0);  // MSI-X only
    EXPECT_EQ(cfg_read<uint32_t>(0x10) & 0x6, 0x4u);      // 64-bit memory BAR
    // No device-specific configuration for virtio-rng: no DEVICE_CFG structure.
    std::vector<uint8_t> sorted = cap_types;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<uint8_t>{virtio::kPciCapCommonCfg, virtio::kPciCapNotifyCfg,
                                            virtio::kPciCapIsrCfg, virtio::kPciCapPciCfg}));
    EXPECT_NE(msix_cap, 0);
    EXPECT_EQ(cfg_read<uint16_t>(msix_cap + 2) & 0x7ff, 1);  // two vectors
    EXPECT_EQ(notify_multiplier, 4u);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, num_queues)), 1);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_size)), VirtioRng::kQueueSize);
    EXPECT_EQ(common<uint8_t>(offsetof(Cfg, config_generation)), 0);
    set_common<uint32_t>(offsetof(Cfg, device_feature_select), 1);
    EXPECT_EQ(common<uint32_t>(offsetof(Cfg, device_feature)), 1u);  // VIRTIO_F_VERSION_1
    set_common<uint32_t>(offsetof(Cfg, device_feature_select), 0);
    EXPECT_EQ(common<uint32_t>(offsetof(Cfg, device_feature)), 3u << 28);  // indirect, event idx
    set_common<uint32_t>(offsetof(Cfg, device_feature_select), 2);
    EXPECT_EQ(common<uint32_t>(offsetof(Cfg, device_feature)), 0u);
}

TEST_F(VirtioPciTest, DriverBringsTheDeviceUpAndGetsRandomBytes) {
    add_rng();
    DriverQueue queue(memory, 16, kRings);
    bring_up(queue);
    EXPECT_EQ(status(), virtio::kStatusAcknowledge | virtio::kStatusDriver |
                            virtio::kStatusFeaturesOk | virtio::kStatusDriverOk);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_size)), 16);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_msix_vector)), kQueueVector);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_enable)), 1);
    EXPECT_EQ(common<uint64_t>(offsetof(Cfg, queue_desc)), queue.config().desc_table);
    EXPECT_EQ(msi.vector(kQueueVector).messages().back(), (MsiMessage{0xfee0'0000, 0x31}));

    uint16_t head = queue.add_chain({{kData, 32, true}});
    queue.make_available(head);
    kick();
    ASSERT_TRUE(msi.vector(kQueueVector).wait_for_triggers(1));
    ASSERT_EQ(queue.used_idx(), 1);
    EXPECT_EQ(queue.used(0).id, head);
    EXPECT_EQ(queue.used(0).len, 32u);
    EXPECT_FALSE(all_zero(memory, kData, 32));
    EXPECT_EQ(msi.vector(kConfigVector).triggers(), 0);
    EXPECT_EQ(device->notifications(), 1u);
    // The ISR byte says "queue", and reading it clears it.
    EXPECT_EQ(bar_read<uint8_t>(isr_offset), virtio::kIsrQueue);
    EXPECT_EQ(bar_read<uint8_t>(isr_offset), 0);

    // A second request, with indirect descriptors and event idx this time.
    queue.make_available(queue.add_chain({{kData + 0x1000, 100, true}}));
    kick();
    ASSERT_TRUE(msi.vector(kQueueVector).wait_for_triggers(2));
    EXPECT_EQ(queue.used(1).len, 100u);
    EXPECT_EQ(device->notifications(), 2u);
}

TEST_F(VirtioPciTest, WorksWithIndirectDescriptorsAndEventIdx) {
    add_rng();
    DriverQueue queue(memory, 16, kRings);
    bring_up(queue, kVersion1 | uint64_t{3} << 28);
    set_common<uint32_t>(offsetof(Cfg, driver_feature_select), 0);
    EXPECT_EQ(common<uint32_t>(offsetof(Cfg, driver_feature)), 3u << 28);
    queue.make_available(
        queue.add_indirect(kData + 0x8000, {{kData, 16, true}, {kData + 0x100, 16, true}}));
    kick();
    ASSERT_TRUE(msi.vector(kQueueVector).wait_for_triggers(1));
    EXPECT_EQ(queue.used(0).len, 32u);
}

TEST_F(VirtioPciTest, FeaturesOkNeedsVersion1) {
    add_rng();
    enable_msix();
    uint8_t back = negotiate(uint64_t{1} << virtio::kFeatureIndirectDesc);
    EXPECT_EQ(back & virtio::kStatusFeaturesOk, 0);
    // DRIVER_OK without FEATURES_OK does not start the device.
    DriverQueue queue(memory, 16, kRings);
    setup_queue(queue, 16);
    set_common<uint8_t>(offsetof(Cfg, device_status), virtio::kStatusAcknowledge |
                                                          virtio::kStatusDriver |
                                                          virtio::kStatusDriverOk);
    EXPECT_EQ(status() & virtio::kStatusDriverOk, 0);
    queue.make_available(queue.add_chain({{kData, 8, true}}));
    kick();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(queue.used_idx(), 0);
}

TEST_F(VirtioPciTest, UnofferedFeaturesAndInvalidVectorsAreRefused) {
    add_rng();
    enable_msix();
    negotiate(kVersion1 | uint64_t{1} << 40 | 1);  // bits 0 and 40 are not offered
    set_common<uint32_t>(offsetof(Cfg, driver_feature_select), 0);
    EXPECT_EQ(common<uint32_t>(offsetof(Cfg, driver_feature)), 0u);
    set_common<uint32_t>(offsetof(Cfg, driver_feature_select), 1);
    EXPECT_EQ(common<uint32_t>(offsetof(Cfg, driver_feature)), 1u);
    // Features are fixed once FEATURES_OK is set.
    set_common<uint32_t>(offsetof(Cfg, driver_feature), 0);
    EXPECT_EQ(common<uint32_t>(offsetof(Cfg, driver_feature)), 1u);

    set_common<uint16_t>(offsetof(Cfg, queue_msix_vector), 2);  // the table has 0 and 1
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_msix_vector)), virtio::kMsiNoVector);
    set_common<uint16_t>(offsetof(Cfg, config_msix_vector), 7);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, config_msix_vector)), virtio::kMsiNoVector);
    set_common<uint16_t>(offsetof(Cfg, queue_size), 3);  // not a power of two
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_size)), VirtioRng::kQueueSize);
    set_common<uint16_t>(offsetof(Cfg, queue_size), 512);  // over the maximum
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_size)), VirtioRng::kQueueSize);
    set_common<uint16_t>(offsetof(Cfg, queue_select), 1);  // no such queue
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_size)), 0);
    set_common<uint16_t>(offsetof(Cfg, queue_enable), 1);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_enable)), 0);
}

TEST_F(VirtioPciTest, PciCfgWindowReachesTheBar) {
    add_rng();
    ASSERT_NE(window_cap, 0);
    // Read num_queues (2 bytes at common + 18) through config space.
    cfg_write<uint8_t>(window_cap + 4, 0);
    cfg_write<uint32_t>(window_cap + 8,
                        static_cast<uint32_t>(common_offset + offsetof(Cfg, num_queues)));
    cfg_write<uint32_t>(window_cap + 12, 2);
    EXPECT_EQ(cfg_read<uint16_t>(window_cap + 16), 1);
    // Write device_status = ACKNOWLEDGE through it.
    cfg_write<uint32_t>(window_cap + 8,
                        static_cast<uint32_t>(common_offset + offsetof(Cfg, device_status)));
    cfg_write<uint32_t>(window_cap + 12, 1);
    cfg_write<uint8_t>(window_cap + 16, virtio::kStatusAcknowledge);
    EXPECT_EQ(status(), virtio::kStatusAcknowledge);
    // A misaligned or oversized window does nothing.
    cfg_write<uint32_t>(window_cap + 8, 1);
    cfg_write<uint32_t>(window_cap + 12, 2);
    cfg_write<uint16_t>(window_cap + 16, 0xffff);
    cfg_write<uint32_t>(window_cap + 12, 3);
    cfg_write<uint32_t>(window_cap + 16, 0xffff'ffff);
    EXPECT_EQ(status(), virtio::kStatusAcknowledge);
}

TEST_F(VirtioPciTest, KicksGoThroughIoEventFdsThatFollowTheBar) {
    FakeIoEventRegistry registry;
    add_rng(&registry);
    DriverQueue queue(memory, 16, kRings);
    EXPECT_EQ(registry.count(), 0u);  // nothing before the queue is enabled
    bring_up(queue);
    uint64_t notify = bar0() + notify_offset;
    auto bound = registry.at(notify);
    ASSERT_TRUE(bound.has_value());
    EXPECT_EQ(bound->length, 2u);

    // What KVM does on the guest's write: signal the EventFd, no VMM exit.
    queue.make_available(queue.add_chain({{kData, 8, true}}));
    bound->event->signal();
    ASSERT_TRUE(msi.vector(kQueueVector).wait_for_triggers(1));
    EXPECT_EQ(queue.used_idx(), 1);

    // The guest moves BAR 0: the doorbell moves with it.
    uint16_t command = cfg_read<uint16_t>(pci::kCommand);
    cfg_write<uint16_t>(pci::kCommand, command & ~pci::kCommandMemorySpace);
    EXPECT_EQ(registry.count(), 0u);
    uint64_t moved = x86::kPciMmioStart + 0x1000'0000;
    cfg_write<uint32_t>(0x10, static_cast<uint32_t>(moved));
    cfg_write<uint32_t>(0x14, 0);
    cfg_write<uint16_t>(pci::kCommand, command);
    EXPECT_FALSE(registry.at(notify).has_value());
    ASSERT_TRUE(registry.at(moved + notify_offset).has_value());
    queue.make_available(queue.add_chain({{kData, 8, true}}));
    registry.at(moved + notify_offset)->event->signal();
    ASSERT_TRUE(msi.vector(kQueueVector).wait_for_triggers(2));

    // Reset drops the doorbells.
    set_common<uint8_t>(offsetof(Cfg, device_status), 0);
    EXPECT_EQ(registry.count(), 0u);
}

TEST_F(VirtioPciTest, ABrokenDeviceNeedsAResetThenWorksAgain) {
    add_rng();
    DriverQueue queue(memory, 16, kRings);
    bring_up(queue);
    // A buffer far outside the 16 MiB of guest RAM.
    queue.make_available(queue.add_chain({{0x4000'0000, 64, true}}));
    kick();
    ASSERT_TRUE(msi.vector(kConfigVector).wait_for_triggers(1));
    EXPECT_NE(status() & virtio::kStatusDeviceNeedsReset, 0);
    EXPECT_EQ(bar_read<uint8_t>(isr_offset), virtio::kIsrConfig);
    EXPECT_EQ(queue.used_idx(), 0);

    // Broken: a good request is not served.
    queue.make_available(queue.add_chain({{kData, 8, true}}));
    kick();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(queue.used_idx(), 0);
    EXPECT_EQ(msi.vector(kQueueVector).triggers(), 0);
    // The driver cannot clear DEVICE_NEEDS_RESET by writing status...
    set_common<uint8_t>(offsetof(Cfg, device_status), status());
    EXPECT_NE(status() & virtio::kStatusDeviceNeedsReset, 0);

    // ...only by a reset, after which a fresh bring-up works.
    set_common<uint8_t>(offsetof(Cfg, device_status), 0);
    EXPECT_EQ(status(), 0);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_enable)), 0);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, config_msix_vector)), virtio::kMsiNoVector);
    DriverQueue fresh(memory, 16, kRings);
    bring_up(fresh);
    fresh.make_available(fresh.add_chain({{kData, 24, true}}));
    kick();
    ASSERT_TRUE(msi.vector(kQueueVector).wait_for_triggers(1));
    EXPECT_EQ(fresh.used_idx(), 1);
    EXPECT_EQ(fresh.used(0).len, 24u);
    EXPECT_EQ(status() & virtio::kStatusDeviceNeedsReset, 0);
}

TEST_F(VirtioPciTest, RingsOutsideMemoryBreakTheDeviceAtDriverOk) {
    add_rng();
    enable_msix();
    ASSERT_NE(negotiate(kVersion1) & virtio::kStatusFeaturesOk, 0);
    set_common<uint16_t>(offsetof(Cfg, config_msix_vector), kConfigVector);
    set_common<uint16_t>(offsetof(Cfg, queue_size), 16);
    set_common<uint32_t>(offsetof(Cfg, queue_desc), 0x7000'0000);  // no RAM there
    set_common<uint16_t>(offsetof(Cfg, queue_enable), 1);
    set_common<uint8_t>(offsetof(Cfg, device_status), 0x0f);
    EXPECT_EQ(status(), 0x0f | virtio::kStatusDeviceNeedsReset);
    EXPECT_EQ(msi.vector(kConfigVector).triggers(), 1);
}

TEST_F(VirtioPciTest, ResetAndDestructionJoinTheWorker) {
    size_t baseline = thread_count();
    add_rng();
    DriverQueue queue(memory, 16, kRings);
    EXPECT_EQ(thread_count(), baseline);  // no thread before DRIVER_OK
    bring_up(queue);
    EXPECT_EQ(thread_count(), baseline + 1);
    set_common<uint8_t>(offsetof(Cfg, device_status), 0);
    EXPECT_EQ(thread_count(), baseline);

    // Many resets with kicks in flight, then destruction while running.
    for (int round = 0; round < 20; ++round) {
        set_common<uint8_t>(offsetof(Cfg, device_status), 0);
        DriverQueue fresh(memory, 16, kRings);
        bring_up(fresh);
        for (int i = 0; i < 8; ++i) {
            fresh.make_available(fresh.add_chain({{kData + 64 * i, 64, true}}));
            kick();
        }
    }
    EXPECT_EQ(status() & virtio::kStatusDeviceNeedsReset, 0);
    EXPECT_EQ(thread_count(), baseline + 1);
    device.reset();
    root.reset();  // the last owner: the device goes, and its worker with it
    EXPECT_EQ(thread_count(), baseline);
}

// A device with configuration space and a settable queue count.
class ConfigDevice : public VirtioDevice {
public:
    explicit ConfigDevice(uint16_t queues = 2) : queues_(queues) {}
    uint32_t device_type() const override { return virtio::kDeviceBlock; }
    std::string_view name() const override { return "test-device"; }
    uint64_t device_features() const override { return uint64_t{1} << 5; }
    uint16_t queue_count() const override { return queues_; }
    uint16_t queue_max_size() const override { return 64; }
    uint32_t config_size() const override { return sizeof(config); }
    void config_read(uint32_t offset, std::span<uint8_t> data) override {
        std::memcpy(data.data(), config + offset, data.size());
    }
    void config_write(uint32_t offset, std::span<const uint8_t> data) override {
        std::memcpy(config + offset, data.data(), data.size());
    }
    void activate(const VirtioActivation&) override {}
    void process_queue(uint16_t) override {}
    void reset() override {}

    uint8_t config[8] = {1, 2, 3, 4, 5, 6, 7, 8};

private:
    uint16_t queues_;
};

TEST_F(VirtioPciTest, DeviceConfigurationIsReachedThroughItsStructure) {
    auto owned = std::make_unique<ConfigDevice>();
    ConfigDevice& config_device = *owned;
    add_device(std::move(owned));
    EXPECT_NE(std::find(cap_types.begin(), cap_types.end(), virtio::kPciCapDeviceCfg),
              cap_types.end());
    EXPECT_EQ(cfg_read<uint16_t>(pci::kDeviceId), 0x1042);
    EXPECT_EQ(cfg_read<uint32_t>(0x08) >> 8, 0x010000u);
    EXPECT_EQ(cfg_read<uint16_t>(msix_cap + 2) & 0x7ff, 2);  // three vectors for two queues
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, num_queues)), 2);
    EXPECT_EQ(bar_read<uint32_t>(VirtioPciDevice::kDeviceCfgOffset + 4), 0x0807'0605u);
    bar_write<uint16_t>(VirtioPciDevice::kDeviceCfgOffset + 2, 0xaabb);
    EXPECT_EQ(config_device.config[2], 0xbb);
    EXPECT_EQ(config_device.config[3], 0xaa);
    // Past the device's 8 bytes: zeros, and writes go nowhere.
    EXPECT_EQ(bar_read<uint32_t>(VirtioPciDevice::kDeviceCfgOffset + 8), 0u);
    bar_write<uint32_t>(VirtioPciDevice::kDeviceCfgOffset + 6, 0xffff'ffff);
    EXPECT_EQ(config_device.config[6], 7);
    // Queue 1 has its own notify_off.
    set_common<uint16_t>(offsetof(Cfg, queue_select), 1);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_notify_off)), 1);
    EXPECT_EQ(common<uint16_t>(offsetof(Cfg, queue_size)), 64);
}

// A device whose "host kernel back end" signals queue 0 itself: it records
// where the transport routes those signals.
class RoutedDevice : public ConfigDevice {
public:
    void activate(const VirtioActivation& activation) override {
        activation.interrupt.route_used_signals(0, [this](int fd) { routes.push_back(fd); });
    }
    std::vector<int> routes;
};

TEST_F(VirtioPciTest, AKernelBackEndSignalsTheIrqfdOnlyWhileTheVectorMayFire) {
    auto owned = std::make_unique<RoutedDevice>();
    RoutedDevice& routed = *owned;
    add_device(std::move(owned));
    DriverQueue queue(memory, 16, kRings);
    bring_up(queue);
    const int irqfd = msi.vector(kQueueVector).direct().fd();
    ASSERT_EQ(routed.routes, std::vector<int>{irqfd});

    // Masking the queue's vector sends the signals back through the VMM
    // (which keeps them pending); unmasking hands the irqfd out again.
    uint64_t control = VirtioPciDevice::kMsixTableOffset + 16 * kQueueVector + 12;
    bar_write<uint32_t>(control, Msix::kVectorControlMask);
    EXPECT_EQ(routed.routes, (std::vector<int>{irqfd, -1}));
    bar_write<uint32_t>(control, 0);
    EXPECT_EQ(routed.routes, (std::vector<int>{irqfd, -1, irqfd}));
    // Masking another vector changes nothing; so does rewriting the message.
    bar_write<uint32_t>(VirtioPciDevice::kMsixTableOffset + 16 * kConfigVector + 12,
                        Msix::kVectorControlMask);
    bar_write<uint32_t>(VirtioPciDevice::kMsixTableOffset + 16 * kQueueVector + 8, 0x41);
    EXPECT_EQ(routed.routes.size(), 3u);
    // The function mask and MSI-X off count as masked.
    cfg_write<uint16_t>(msix_cap + 2, Msix::kControlEnable | Msix::kControlFunctionMask);
    cfg_write<uint16_t>(msix_cap + 2, Msix::kControlEnable);
    cfg_write<uint16_t>(msix_cap + 2, 0);
    EXPECT_EQ(routed.routes, (std::vector<int>{irqfd, -1, irqfd, -1, irqfd, -1}));
    cfg_write<uint16_t>(msix_cap + 2, Msix::kControlEnable);
    // After a reset the device is told nothing more.
    set_common<uint8_t>(offsetof(Cfg, device_status), 0);
    cfg_write<uint16_t>(msix_cap + 2, 0);
    EXPECT_EQ(routed.routes.size(), 7u);
}

// A device with a source its handler leaves readable, as a TAP's frames wait
// while the guest has no receive buffers: marked edge-triggered.
class UndrainedSourceDevice : public ConfigDevice {
public:
    std::vector<DeviceWorker::Source> worker_sources() override {
        return {{.fd = pending.fd(), .on_readable = [this] { ++handled; }, .edge_triggered = true}};
    }
    EventFd pending;
    std::atomic<int> handled = 0;
};

TEST_F(VirtioPciTest, ADeviceSourceStaysEdgeTriggeredOnTheWorker) {
    auto owned = std::make_unique<UndrainedSourceDevice>();
    UndrainedSourceDevice& model = *owned;
    add_device(std::move(owned));
    DriverQueue queue(memory, 16, kRings);
    bring_up(queue);
    model.pending.signal();
    for (int i = 0; i < 5000 && model.handled == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // Level-triggered, the worker would run the handler again and again,
    // spinning a CPU for as long as the guest gives no buffers.
    EXPECT_EQ(model.handled, 1);
}

TEST(VirtioPciDevice, RefusesDevicesThatDoNotFitTheLayout) {
    GuestMemory memory = GuestMemory::create({{0, 1 * MiB}});
    FakeMsiController msi;
    EXPECT_THROW(VirtioPciDevice(std::make_unique<ConfigDevice>(2000), memory, msi, nullptr),
                 Error);
    EXPECT_THROW(VirtioPciDevice(std::make_unique<ConfigDevice>(0), memory, msi, nullptr), Error);
    EXPECT_EQ(msi.vector_count(), 0u);  // refused before taking any interrupt vector
}

}  // namespace
}  // namespace vireo
