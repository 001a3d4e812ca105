#include "devices/pci/pci_root.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace vireo {

namespace {

// 00:00.0: a host bridge with nothing to configure; its IDs are QEMU's PCIe host
// bridge, which guests already know.
class HostBridge : public PciDevice {
public:
    HostBridge()
        : config_(PciIds{.vendor_id = 0x1b36, .device_id = 0x0008, .class_code = 0x060000}) {}
    void config_read(uint32_t offset, std::span<uint8_t> data) override {
        config_.read(offset, data);
    }
    void config_write(uint32_t offset, std::span<const uint8_t> data) override {
        config_.write(offset, data);
    }
    std::vector<PciBar> bars() const override { return {}; }
    void bar_read(uint8_t, uint64_t, std::span<uint8_t> data) override {
        std::fill(data.begin(), data.end(), 0xff);
    }
    void bar_write(uint8_t, uint64_t, std::span<const uint8_t>) override {}

private:
    PciConfigSpace config_;
};

// What the MMIO bus holds for one BAR: forwards to the function.
class BarRegion : public BusDevice {
public:
    BarRegion(std::shared_ptr<PciDevice> device, uint8_t bar)
        : device_(std::move(device)), bar_(bar) {}
    void read(uint64_t offset, std::span<uint8_t> data) override {
        device_->bar_read(bar_, offset, data);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        device_->bar_write(bar_, offset, data);
    }

private:
    std::shared_ptr<PciDevice> device_;
    uint8_t bar_;
};

template <typename T>
std::span<uint8_t> bytes_of(T& value) {
    return {reinterpret_cast<uint8_t*>(&value), sizeof(T)};
}

template <typename T>
std::span<const uint8_t> bytes_of(const T& value) {
    return {reinterpret_cast<const uint8_t*>(&value), sizeof(T)};
}

}  // namespace

PciRoot::PciRoot(Bus& mmio_bus, uint64_t window_start, uint64_t window_size)
    : mmio_bus_(mmio_bus), window_next_(window_start), window_end_(window_start + window_size) {
    if (window_size == 0 || window_end_ < window_start) {
        fail("PCI root: invalid MMIO window {:#x}+{:#x}", window_start, window_size);
    }
    slots_[0].emplace();
    slots_[0]->device = std::make_shared<HostBridge>();
}

PciRoot::~PciRoot() {
    std::lock_guard lock(mutex_);
    for (auto& slot : slots_) {
        if (!slot) {
            continue;
        }
        for (const PciBar& bar : slot->bars) {
            if (slot->mapped[bar.index]) {
                mmio_bus_.remove(*slot->mapped[bar.index]);
            }
        }
    }
}

uint8_t PciRoot::add_device(std::shared_ptr<PciDevice> device) {
    std::lock_guard lock(mutex_);
    auto free = std::find_if(slots_.begin() + 1, slots_.end(),
                             [](const std::optional<Slot>& slot) { return !slot; });
    if (free == slots_.end()) {
        fail("PCI root: all {} slots of bus 0 are taken", kSlots - 1);
    }
    auto slot_number = static_cast<uint8_t>(free - slots_.begin());

    Slot slot;
    slot.device = std::move(device);
    slot.bars = slot.device->bars();
    // Place every BAR before touching the device, so a full window changes nothing.
    std::vector<uint64_t> addresses;
    uint64_t next = window_next_;
    for (const PciBar& bar : slot.bars) {
        uint64_t address = (next + bar.size - 1) & ~(bar.size - 1);
        if (address < next || address > window_end_ || bar.size > window_end_ - address) {
            fail(
                "PCI root: no room for BAR {} ({:#x} bytes) of the device in slot {} in the "
                "MMIO window ending at {:#x}",
                bar.index, bar.size, slot_number, window_end_);
        }
        addresses.push_back(address);
        next = address + bar.size;
    }
    window_next_ = next;

    for (size_t i = 0; i < slot.bars.size(); ++i) {
        const PciBar& bar = slot.bars[i];
        uint32_t offset = pci::kBar0 + 4 * bar.index;
        auto low = static_cast<uint32_t>(addresses[i]);
        slot.device->config_write(offset, bytes_of(low));
        if (bar.is_64bit) {
            auto high = static_cast<uint32_t>(addresses[i] >> 32);
            slot.device->config_write(offset + 4, bytes_of(high));
        }
    }
    uint16_t command = 0;
    slot.device->config_read(pci::kCommand, bytes_of(command));
    command |= pci::kCommandMemorySpace;
    slot.device->config_write(pci::kCommand, bytes_of(command));

    slots_[slot_number] = std::move(slot);
    update_mappings(slot_number, *slots_[slot_number]);
    return slot_number;
}

PciRoot::Slot* PciRoot::find(uint8_t slot, uint8_t function) {
    if (slot >= kSlots || function != 0 || !slots_[slot]) {
        return nullptr;
    }
    return &*slots_[slot];
}

void PciRoot::config_read(uint8_t slot, uint8_t function, uint32_t offset,
                          std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    Slot* found = find(slot, function);
    if (found == nullptr || offset >= pci::kExtendedSize ||
        data.size() > pci::kExtendedSize - offset) {
        std::fill(data.begin(), data.end(), 0xff);
        return;
    }
    found->device->config_read(offset, data);
}

void PciRoot::config_write(uint8_t slot, uint8_t function, uint32_t offset,
                           std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    Slot* found = find(slot, function);
    if (found == nullptr || offset >= pci::kExtendedSize ||
        data.size() > pci::kExtendedSize - offset) {
        return;
    }
    found->device->config_write(offset, data);
    update_mappings(slot, *found);
}

std::optional<uint64_t> PciRoot::bar_mapping(uint8_t slot, uint8_t bar) const {
    std::lock_guard lock(mutex_);
    if (slot >= kSlots || bar >= pci::kBarCount || !slots_[slot]) {
        return std::nullopt;
    }
    return slots_[slot]->mapped[bar];
}

std::optional<uint64_t> PciRoot::programmed_address(Slot& slot, const PciBar& bar, bool decoding) {
    if (!decoding) {
        return std::nullopt;
    }
    uint32_t offset = pci::kBar0 + 4 * bar.index;
    uint32_t low = 0;
    slot.device->config_read(offset, bytes_of(low));
    uint64_t address = low & ~pci::kBarMemoryFlagsMask;
    if (bar.is_64bit) {
        uint32_t high = 0;
        slot.device->config_read(offset + 4, bytes_of(high));
        address |= uint64_t{high} << 32;
    }
    if (address == 0) {
        return std::nullopt;  // never assigned: firmware convention
    }
    return address;
}

void PciRoot::update_mappings(uint8_t slot_number, Slot& slot) {
    if (slot.bars.empty()) {
        return;
    }
    uint16_t command = 0;
    slot.device->config_read(pci::kCommand, bytes_of(command));
    bool decoding = (command & pci::kCommandMemorySpace) != 0;

    for (const PciBar& bar : slot.bars) {
        std::optional<uint64_t> wanted = programmed_address(slot, bar, decoding);
        std::optional<uint64_t>& mapped = slot.mapped[bar.index];
        if (wanted == mapped) {
            slot.refused[bar.index].reset();
            continue;
        }
        auto region = std::make_shared<BarRegion>(slot.device, bar.index);
        if (mapped) {
            mmio_bus_.remove(*mapped);
        }
        if (!wanted) {
            mapped.reset();
            slot.device->bar_moved(bar.index, std::nullopt);
            continue;
        }
        try {
            mmio_bus_.insert(*wanted, bar.size, region);
        } catch (const Error& error) {
            if (mapped) {
                mmio_bus_.insert(*mapped, bar.size, region);  // its old place is still free
            }
            if (slot.refused[bar.index] != wanted) {
                log_.warn("00:{:02x}.0: BAR {} move to {:#x} refused, it stays at {}: {}",
                          slot_number, bar.index, *wanted,
                          mapped ? fmt::format("{:#x}", *mapped) : "nowhere", error.what());
            }
            slot.refused[bar.index] = wanted;
            continue;
        }
        mapped = wanted;
        slot.refused[bar.index].reset();
        slot.device->bar_moved(bar.index, mapped);
    }
}

void PciConfigIo::read(uint64_t offset, std::span<uint8_t> data) {
    uint32_t address = 0;
    {
        std::lock_guard lock(mutex_);
        address = address_;
    }
    if (offset == 0 && data.size() == 4) {
        std::memcpy(data.data(), &address, 4);
        return;
    }
    auto root = root_.lock();
    if (offset < 4 || !root || (address & 0x8000'0000u) == 0 || ((address >> 16) & 0xff) != 0) {
        std::fill(data.begin(), data.end(), 0xff);
        return;
    }
    root->config_read(static_cast<uint8_t>((address >> 11) & 0x1f),
                      static_cast<uint8_t>((address >> 8) & 0x7),
                      (address & 0xfc) + static_cast<uint32_t>(offset - 4), data);
}

void PciConfigIo::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset == 0 && data.size() == 4) {
        uint32_t value = 0;
        std::memcpy(&value, data.data(), 4);
        std::lock_guard lock(mutex_);
        address_ = value & 0x80ff'fffcu;  // reserved bits 30:24 and 1:0 read as 0
        return;
    }
    uint32_t address = 0;
    {
        std::lock_guard lock(mutex_);
        address = address_;
    }
    auto root = root_.lock();
    if (offset < 4 || !root || (address & 0x8000'0000u) == 0 || ((address >> 16) & 0xff) != 0) {
        return;
    }
    root->config_write(static_cast<uint8_t>((address >> 11) & 0x1f),
                       static_cast<uint8_t>((address >> 8) & 0x7),
                       (address & 0xfc) + static_cast<uint32_t>(offset - 4), data);
}

void PciConfigMmio::read(uint64_t offset, std::span<uint8_t> data) {
    auto root = root_.lock();
    uint32_t reg = offset & 0xfff;
    if (!root || (offset >> 20) != 0 || reg + data.size() > pci::kExtendedSize) {
        std::fill(data.begin(), data.end(), 0xff);
        return;
    }
    root->config_read(static_cast<uint8_t>((offset >> 15) & 0x1f),
                      static_cast<uint8_t>((offset >> 12) & 0x7), reg, data);
}

void PciConfigMmio::write(uint64_t offset, std::span<const uint8_t> data) {
    auto root = root_.lock();
    uint32_t reg = offset & 0xfff;
    if (!root || (offset >> 20) != 0 || reg + data.size() > pci::kExtendedSize) {
        return;
    }
    root->config_write(static_cast<uint8_t>((offset >> 15) & 0x1f),
                       static_cast<uint8_t>((offset >> 12) & 0x7), reg, data);
}

}  // namespace vireo
