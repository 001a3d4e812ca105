#include "devices/pci/config_space.h"

#include <bit>

#include "base/error.h"

namespace vireo {

namespace {

// Bits of the command register a guest may set: I/O and memory decoding, bus
// mastering, parity and SERR# response, INTx disable.
constexpr uint16_t kCommandWritable = 0x0547;

}  // namespace

PciConfigSpace::PciConfigSpace(const PciIds& ids) {
    store(pci::kVendorId, ids.vendor_id);
    store(pci::kDeviceId, ids.device_id);
    store(pci::kRevisionId, ids.revision_id);
    bytes_[pci::kClassCode] = static_cast<uint8_t>(ids.class_code);
    bytes_[pci::kClassCode + 1] = static_cast<uint8_t>(ids.class_code >> 8);
    bytes_[pci::kClassCode + 2] = static_cast<uint8_t>(ids.class_code >> 16);
    bytes_[pci::kHeaderType] = 0;  // type 0, single function
    store(pci::kSubsystemVendorId, ids.subsystem_vendor_id);
    store(pci::kSubsystemId, ids.subsystem_id);
    bytes_[pci::kInterruptPin] = ids.interrupt_pin;

    writable_[pci::kCommand] = static_cast<uint8_t>(kCommandWritable);
    writable_[pci::kCommand + 1] = static_cast<uint8_t>(kCommandWritable >> 8);
    writable_[pci::kCacheLineSize] = 0xff;
    writable_[pci::kInterruptLine] = 0xff;
}

void PciConfigSpace::check_range(uint32_t offset, size_t size) const {
    if (offset > bytes_.size() || size > bytes_.size() - offset) {
        fail("PCI config space: access {:#x}+{} is outside the 4 KiB space", offset, size);
    }
}

void PciConfigSpace::add_bar(const PciBar& bar) {
    int slots = bar.is_64bit ? 2 : 1;
    if (bar.index + slots > pci::kBarCount) {
        fail("PCI BAR {}: index out of range (0-5, a 64-bit BAR needs two)", bar.index);
    }
    if (bar.size < 16 || !std::has_single_bit(bar.size) ||
        (!bar.is_64bit && bar.size > (uint64_t{1} << 31))) {
        fail("PCI BAR {}: size {:#x} is not a power of two between 16 bytes and {}", bar.index,
             bar.size, bar.is_64bit ? "2^63" : "2 GiB");
    }
    for (int slot = bar.index; slot < bar.index + slots; ++slot) {
        for (const auto& other : bars_) {
            if (other && (other->index == slot || (other->is_64bit && other->index + 1 == slot))) {
                fail("PCI BAR {}: overlaps BAR {}", bar.index, other->index);
            }
        }
    }
    bars_[bar.index] = bar;

    uint32_t offset = pci::kBar0 + 4 * bar.index;
    uint32_t flags =
        (bar.is_64bit ? pci::kBarMemory64 : 0) | (bar.prefetchable ? pci::kBarPrefetchable : 0);
    uint64_t mask = ~(bar.size - 1);
    store(offset, flags);
    uint32_t low_mask = static_cast<uint32_t>(mask) & ~pci::kBarMemoryFlagsMask;
    std::memcpy(writable_.data() + offset, &low_mask, 4);
    if (bar.is_64bit) {
        store(offset + 4, uint32_t{0});
        auto high_mask = static_cast<uint32_t>(mask >> 32);
        std::memcpy(writable_.data() + offset + 4, &high_mask, 4);
    }
}

std::optional<PciBar> PciConfigSpace::bar(uint8_t index) const {
    if (index >= pci::kBarCount) {
        return std::nullopt;
    }
    return bars_[index];
}

std::optional<uint64_t> PciConfigSpace::bar_address(uint8_t index) const {
    auto declared = bar(index);
    if (!declared) {
        return std::nullopt;
    }
    uint32_t offset = pci::kBar0 + 4 * index;
    uint64_t address = load<uint32_t>(offset) & ~pci::kBarMemoryFlagsMask;
    if (declared->is_64bit) {
        address |= uint64_t{load<uint32_t>(offset + 4)} << 32;
    }
    return address;
}

uint8_t PciConfigSpace::add_capability(std::span<const uint8_t> bytes,
                                       std::span<const uint8_t> writable) {
    if (bytes.size() < 2 || (!writable.empty() && writable.size() != bytes.size())) {
        fail("PCI capability: {} bytes with a {}-byte write mask", bytes.size(), writable.size());
    }
    uint32_t offset = next_capability_;
    if (offset + bytes.size() > pci::kHeaderSize) {
        fail("PCI capability {:#x}: no room left in the 256-byte header", bytes[0]);
    }
    std::memcpy(bytes_.data() + offset, bytes.data(), bytes.size());
    bytes_[offset + 1] = 0;  // end of the list, until another one is appended
    if (!writable.empty()) {
        std::memcpy(writable_.data() + offset, writable.data(), writable.size());
        writable_[offset] = 0;
        writable_[offset + 1] = 0;
    }
    if (last_capability_ == 0) {
        bytes_[pci::kCapabilitiesPointer] = static_cast<uint8_t>(offset);
        store(pci::kStatus,
              static_cast<uint16_t>(load<uint16_t>(pci::kStatus) | pci::kStatusCapabilitiesList));
    } else {
        bytes_[last_capability_ + 1] = static_cast<uint8_t>(offset);
    }
    last_capability_ = static_cast<uint8_t>(offset);
    next_capability_ = (offset + static_cast<uint32_t>(bytes.size()) + 3) & ~3u;
    return last_capability_;
}

void PciConfigSpace::read(uint32_t offset, std::span<uint8_t> data) const {
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = uint64_t{offset} + i;
        data[i] = at < bytes_.size() ? bytes_[at] : 0;
    }
}

void PciConfigSpace::write(uint32_t offset, std::span<const uint8_t> data) {
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = uint64_t{offset} + i;
        if (at < bytes_.size()) {
            bytes_[at] =
                static_cast<uint8_t>((bytes_[at] & ~writable_[at]) | (data[i] & writable_[at]));
        }
    }
}

}  // namespace vireo
