// libFuzzer target for the PCI root and the virtio PCI transport: the input is
// a sequence of guest actions against a VirtioPciDevice(virtio-rng) on bus 0:
// config reads and writes through ECAM and ports 0xCF8/0xCFC (BAR moves, memory
// decoding, MSI-X control, the PCI cfg window), BAR 0 reads and writes wherever
// the BAR currently is (common config, notify, ISR, MSI-X table and PBA),
// writes to guest RAM (rings and descriptors) and kicks, plus two shortcuts a
// fuzzer would take long to find: a whole driver bring-up with fuzzed
// parameters, and offering a fuzzed descriptor on the ring it set up. The
// device's worker thread runs for real. Nothing may crash, deadlock or touch memory outside
// guest RAM; tearing everything down at the end must join the worker.
#include <fuzzer/FuzzedDataProvider.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "arch/x86/layout.h"
#include "base/error.h"
#include "devices/bus.h"
#include "devices/interrupts.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_spec.h"
#include "memory/guest_memory.h"

namespace {

constexpr uint64_t kRamSize = 0x40000;  // 256 KiB: rings and buffers fit, plenty of misses

class NullVector : public vireo::MsiVector {
public:
    void set_message(const vireo::MsiMessage&) override {}
    void trigger() override {}
};

class NullMsiController : public vireo::MsiController {
public:
    std::unique_ptr<vireo::MsiVector> create_vector() override {
        return std::make_unique<NullVector>();
    }
};

// Keeps bindings like KVM would, and refuses a second one at the same address.
class CheckingIoEventRegistry : public vireo::IoEventRegistry {
public:
    class Binding : public vireo::IoEventBinding {
    public:
        Binding(CheckingIoEventRegistry& registry, uint64_t address)
            : registry_(registry), address_(address) {}
        ~Binding() override { registry_.bound_.erase(address_); }

    private:
        CheckingIoEventRegistry& registry_;
        uint64_t address_;
    };

    std::unique_ptr<vireo::IoEventBinding> bind_mmio(uint64_t address, uint32_t,
                                                     const vireo::EventFd&) override {
        if (!bound_.insert(address).second) {
            vireo::fail("ioeventfd at {:#x} already bound", address);
        }
        return std::make_unique<Binding>(*this, address);
    }

private:
    std::set<uint64_t> bound_;
};

vireo::GuestMemory& memory() {
    static vireo::GuestMemory ram = vireo::GuestMemory::create({{0, kRamSize}});
    return ram;
}

enum class Action {
    EcamRead,
    EcamWrite,
    PortRead,
    PortWrite,
    BarRead,
    BarWrite,
    RamWrite,
    Kick,
    Yield,
    BringUp,
    OfferDescriptor,
    kMaxValue = OfferDescriptor
};

// What the last BringUp told the device, so OfferDescriptor can use the ring.
struct Ring {
    uint16_t size = 0;
    uint64_t desc = 0;
    uint64_t avail = 0;
    uint16_t avail_idx = 0;
};

template <typename T>
void write_bar(vireo::Bus& mmio, uint64_t base, uint64_t offset, T value) {
    mmio.write(base + offset, {reinterpret_cast<const uint8_t*>(&value), sizeof(T)});
}

// The virtio 1.x bring-up (3.1.1) with fuzzed features, queue size, rings and vectors.
Ring bring_up(FuzzedDataProvider& input, vireo::Bus& mmio, uint64_t bar) {
    using Cfg = vireo::virtio::PciCommonCfg;
    using vireo::VirtioPciDevice;
    // MSI-X on with two unmasked entries.
    for (uint64_t vector = 0; vector < 2; ++vector) {
        write_bar<uint32_t>(mmio, bar, VirtioPciDevice::kMsixTableOffset + 16 * vector, 0xfee00000);
        write_bar<uint32_t>(mmio, bar, VirtioPciDevice::kMsixTableOffset + 16 * vector + 12, 0);
    }
    uint64_t common = VirtioPciDevice::kCommonCfgOffset;
    write_bar<uint8_t>(mmio, bar, common + offsetof(Cfg, device_status), 0);
    write_bar<uint8_t>(mmio, bar, common + offsetof(Cfg, device_status), 3);
    write_bar<uint32_t>(mmio, bar, common + offsetof(Cfg, driver_feature_select), 0);
    write_bar<uint32_t>(mmio, bar, common + offsetof(Cfg, driver_feature),
                        input.ConsumeIntegral<uint32_t>());
    write_bar<uint32_t>(mmio, bar, common + offsetof(Cfg, driver_feature_select), 1);
    write_bar<uint32_t>(mmio, bar, common + offsetof(Cfg, driver_feature),
                        input.ConsumeBool() ? 1 : input.ConsumeIntegral<uint32_t>());
    write_bar<uint8_t>(mmio, bar, common + offsetof(Cfg, device_status), 0xb);
    write_bar<uint16_t>(mmio, bar, common + offsetof(Cfg, config_msix_vector),
                        input.ConsumeIntegralInRange<uint16_t>(0, 2));
    Ring ring;
    ring.size = static_cast<uint16_t>(1u << input.ConsumeIntegralInRange(0, 8));
    ring.desc = input.ConsumeIntegralInRange<uint64_t>(0, kRamSize) & ~uint64_t{15};
    ring.avail = input.ConsumeIntegralInRange<uint64_t>(0, kRamSize) & ~uint64_t{1};
    uint64_t used = input.ConsumeIntegralInRange<uint64_t>(0, kRamSize) & ~uint64_t{3};
    write_bar<uint16_t>(mmio, bar, common + offsetof(Cfg, queue_select), 0);
    write_bar<uint16_t>(mmio, bar, common + offsetof(Cfg, queue_size), ring.size);
    write_bar<uint16_t>(mmio, bar, common + offsetof(Cfg, queue_msix_vector),
                        input.ConsumeIntegralInRange<uint16_t>(0, 2));
    write_bar<uint64_t>(mmio, bar, common + offsetof(Cfg, queue_desc), ring.desc);
    write_bar<uint64_t>(mmio, bar, common + offsetof(Cfg, queue_driver), ring.avail);
    write_bar<uint64_t>(mmio, bar, common + offsetof(Cfg, queue_device), used);
    write_bar<uint16_t>(mmio, bar, common + offsetof(Cfg, queue_enable), 1);
    write_bar<uint8_t>(mmio, bar, common + offsetof(Cfg, device_status), 0xf);
    return ring;
}

size_t pick_width(FuzzedDataProvider& input) {
    static constexpr size_t kWidths[] = {1, 2, 4, 8};
    return kWidths[input.ConsumeIntegralInRange(0, 3)];
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    auto logger =
        std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider input(data, size);
    vireo::GuestMemory& ram = memory();
    std::memset(ram.span(0, kRamSize)->data(), 0, kRamSize);

    vireo::Bus pio("pio");
    vireo::Bus mmio("mmio");
    NullMsiController msi;
    CheckingIoEventRegistry registry;
    auto root =
        std::make_shared<vireo::PciRoot>(mmio, vireo::x86::kPciMmioStart, vireo::x86::kPciMmioSize);
    pio.insert(vireo::x86::kPciConfigAddressPort, vireo::PciConfigIo::kSize,
               std::make_shared<vireo::PciConfigIo>(root));
    mmio.insert(vireo::x86::kPciEcamStart, vireo::x86::kPciEcamSize,
                std::make_shared<vireo::PciConfigMmio>(root));
    bool with_registry = input.ConsumeBool();
    auto device = std::make_shared<vireo::VirtioPciDevice>(
        std::make_unique<vireo::VirtioRng>(), ram, msi, with_registry ? &registry : nullptr);
    uint8_t slot = root->add_device(device);
    device.reset();  // the root owns it, as in the VMM

    uint8_t buffer[8];
    Ring ring;
    for (int step = 0; step < 256 && input.remaining_bytes() > 0; ++step) {
        switch (input.ConsumeEnum<Action>()) {
            case Action::EcamRead:
            case Action::EcamWrite: {
                bool write = input.ConsumeBool();
                // Mostly our function, sometimes any of bus 0.
                uint64_t function = input.ConsumeBool() ? uint64_t{slot} << 15
                                                        : input.ConsumeIntegral<uint8_t>() << 12;
                uint64_t address = vireo::x86::kPciEcamStart + function +
                                   input.ConsumeIntegralInRange<uint32_t>(0, 0xfff);
                size_t width = pick_width(input);
                uint64_t value = input.ConsumeIntegral<uint64_t>();
                std::memcpy(buffer, &value, sizeof(value));
                if (write) {
                    mmio.write(address, {buffer, width});
                } else {
                    mmio.read(address, {buffer, width});
                }
                break;
            }
            case Action::PortRead:
            case Action::PortWrite: {
                bool write = input.ConsumeBool();
                uint16_t port = static_cast<uint16_t>(vireo::x86::kPciConfigAddressPort +
                                                      input.ConsumeIntegralInRange(0, 7));
                size_t width = pick_width(input) % 8;
                width = width == 0 ? 4 : width;
                uint32_t value = input.ConsumeBool()
                                     ? 0x8000'0000u | uint32_t{slot} << 11 |
                                           input.ConsumeIntegralInRange<uint32_t>(0, 0xff)
                                     : input.ConsumeIntegral<uint32_t>();
                std::memcpy(buffer, &value, sizeof(value));
                if (write) {
                    pio.write(port, {buffer, width});
                } else {
                    pio.read(port, {buffer, width});
                }
                break;
            }
            case Action::BarRead:
            case Action::BarWrite: {
                bool write = input.ConsumeBool();
                auto base = root->bar_mapping(slot, vireo::VirtioPciDevice::kBar);
                uint64_t offset =
                    input.ConsumeIntegralInRange<uint64_t>(0, vireo::VirtioPciDevice::kBarSize);
                size_t width = pick_width(input);
                uint64_t value = input.ConsumeIntegral<uint64_t>();
                std::memcpy(buffer, &value, sizeof(value));
                uint64_t address = base.value_or(vireo::x86::kPciMmioStart) + offset;
                if (write) {
                    mmio.write(address, {buffer, width});
                } else {
                    mmio.read(address, {buffer, width});
                }
                break;
            }
            case Action::RamWrite: {
                uint64_t address = input.ConsumeIntegralInRange<uint64_t>(0, kRamSize - 1);
                std::vector<uint8_t> bytes =
                    input.ConsumeBytes<uint8_t>(input.ConsumeIntegralInRange<size_t>(1, 64));
                if (!bytes.empty()) {
                    ram.write(address, bytes.data(),
                              std::min<uint64_t>(bytes.size(), kRamSize - address));
                }
                break;
            }
            case Action::Kick: {
                auto base = root->bar_mapping(slot, vireo::VirtioPciDevice::kBar);
                if (base) {
                    uint16_t queue = 0;
                    mmio.write(*base + vireo::VirtioPciDevice::kNotifyOffset,
                               {reinterpret_cast<uint8_t*>(&queue), 2});
                }
                break;
            }
            case Action::Yield:
                std::this_thread::yield();
                break;
            case Action::BringUp: {
                auto base = root->bar_mapping(slot, vireo::VirtioPciDevice::kBar);
                if (base) {
                    // MSI-X enable in the capability (the first one in the list).
                    uint64_t function = vireo::x86::kPciEcamStart + (uint64_t{slot} << 15);
                    uint8_t capability = 0;
                    mmio.read(function + vireo::pci::kCapabilitiesPointer, {&capability, 1});
                    uint16_t control = vireo::Msix::kControlEnable;
                    mmio.write(function + capability + 2,
                               {reinterpret_cast<uint8_t*>(&control), 2});
                    ring = bring_up(input, mmio, *base);
                }
                break;
            }
            case Action::OfferDescriptor: {
                if (ring.size == 0) {
                    break;
                }
                auto index = input.ConsumeIntegralInRange<uint16_t>(0, ring.size - 1);
                vireo::virtio::VirtqDesc desc{
                    input.ConsumeBool() ? input.ConsumeIntegralInRange<uint64_t>(0, kRamSize)
                                        : input.ConsumeIntegral<uint64_t>(),
                    input.ConsumeIntegral<uint32_t>(), input.ConsumeIntegral<uint16_t>(),
                    input.ConsumeIntegral<uint16_t>()};
                ram.write_object(ring.desc + 16 * uint64_t{index}, desc);
                ram.write_object(
                    ring.avail + 4 + 2 * static_cast<uint64_t>(ring.avail_idx % ring.size),
                    input.ConsumeBool() ? index : input.ConsumeIntegral<uint16_t>());
                ++ring.avail_idx;
                ram.write_object(ring.avail + 2, ring.avail_idx);
                break;
            }
        }
    }
    // Destroying the root destroys the device: its worker must be joined.
    root.reset();
    return 0;
}
