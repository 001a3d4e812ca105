#include "devices/pci/msix.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/error.h"

namespace vireo {

Msix::Msix(MsiController& controller, uint16_t vector_count) {
    if (vector_count == 0 || vector_count > 2048) {
        fail("MSI-X: {} vectors requested, the table holds 1 to 2048", vector_count);
    }
    for (uint16_t i = 0; i < vector_count; ++i) {
        vectors_.push_back(controller.create_vector());
    }
    entries_.resize(vector_count);
    pending_.resize(vector_count);
}

uint8_t Msix::add_capability(PciConfigSpace& config, uint8_t bar, uint32_t table_offset,
                             uint32_t pba_offset) {
    if (bar >= pci::kBarCount || table_offset % 8 != 0 || pba_offset % 8 != 0) {
        fail("MSI-X: table/PBA in BAR {} at {:#x}/{:#x}: need BAR 0-5 and 8-byte alignment", bar,
             table_offset, pba_offset);
    }
    // ID, next, message control (table size N-1), table offset|BIR, PBA offset|BIR.
    std::array<uint8_t, kCapabilitySize> bytes{};
    std::array<uint8_t, kCapabilitySize> writable{};
    bytes[0] = pci::kCapabilityMsix;
    auto control = static_cast<uint16_t>(vectors_.size() - 1);
    std::memcpy(&bytes[2], &control, 2);
    uint32_t table = table_offset | bar;
    uint32_t pba = pba_offset | bar;
    std::memcpy(&bytes[4], &table, 4);
    std::memcpy(&bytes[8], &pba, 4);
    writable[3] = (kControlEnable | kControlFunctionMask) >> 8;
    std::lock_guard lock(mutex_);
    capability_ = config.add_capability(bytes, writable);
    return capability_;
}

void Msix::config_written(const PciConfigSpace& config) {
    std::lock_guard lock(mutex_);
    if (capability_ == 0) {
        return;
    }
    auto control = config.load<uint16_t>(capability_ + 2u);
    enabled_ = (control & kControlEnable) != 0;
    function_masked_ = (control & kControlFunctionMask) != 0;
    deliver_pending();
}

bool Msix::enabled() const {
    std::lock_guard lock(mutex_);
    return enabled_;
}

void Msix::table_read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        size_t index = at / kEntrySize;
        if (index >= entries_.size()) {
            data[i] = 0;
            continue;
        }
        std::array<uint8_t, kEntrySize> raw;
        std::memcpy(raw.data(), &entries_[index], kEntrySize);
        data[i] = raw[at % kEntrySize];
    }
}

void Msix::table_write(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size();) {
        uint64_t at = offset + i;
        size_t index = at / kEntrySize;
        if (index >= entries_.size()) {
            return;
        }
        // The bytes of this access that fall into entry `index`.
        size_t first = at % kEntrySize;
        size_t count = std::min(data.size() - i, kEntrySize - first);
        Entry& entry = entries_[index];
        Entry before = entry;
        std::array<uint8_t, kEntrySize> raw;
        std::memcpy(raw.data(), &entry, kEntrySize);
        std::memcpy(raw.data() + first, data.data() + i, count);
        std::memcpy(&entry, raw.data(), kEntrySize);
        entry.control &= kVectorControlMask;  // the other control bits are reserved
        if (entry.address_low != before.address_low || entry.address_high != before.address_high ||
            entry.data != before.data) {
            vectors_[index]->set_message(
                MsiMessage{uint64_t{entry.address_high} << 32 | entry.address_low, entry.data});
        }
        i += count;
    }
    deliver_pending();
}

void Msix::pba_read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t bit = (offset + i) * 8;
        uint8_t byte = 0;
        for (uint64_t b = 0; b < 8 && bit + b < pending_.size(); ++b) {
            byte |= static_cast<uint8_t>(pending_[bit + b] ? 1u << b : 0u);
        }
        data[i] = byte;
    }
}

void Msix::signal(uint16_t vector) {
    std::lock_guard lock(mutex_);
    if (!enabled_ || vector >= vectors_.size()) {
        return;
    }
    if (masked(vector)) {
        pending_[vector] = true;
        return;
    }
    vectors_[vector]->trigger();
}

int Msix::direct_fd(uint16_t vector) const {
    std::lock_guard lock(mutex_);
    if (!enabled_ || vector >= vectors_.size() || masked(vector)) {
        return -1;
    }
    return vectors_[vector]->direct_fd();
}

void Msix::deliver_pending() {
    if (!enabled_) {
        return;
    }
    for (size_t vector = 0; vector < pending_.size(); ++vector) {
        if (pending_[vector] && !masked(vector)) {
            pending_[vector] = false;
            vectors_[vector]->trigger();
        }
    }
}

}  // namespace vireo
