#include "devices/bus.h"

#include <algorithm>
#include <mutex>

#include "base/error.h"

namespace vireo {

void Bus::insert(uint64_t base, uint64_t length, std::shared_ptr<BusDevice> device) {
    if (length == 0 || base + length < base) {
        fail("{} bus: invalid range {:#x}+{:#x}", name_, base, length);
    }
    std::unique_lock lock(mutex_);
    auto next = ranges_.lower_bound(base);
    if (next != ranges_.end() && next->first < base + length) {
        fail("{} bus: range {:#x}+{:#x} overlaps {:#x}", name_, base, length, next->first);
    }
    if (next != ranges_.begin()) {
        auto previous = std::prev(next);
        if (previous->first + previous->second.length > base) {
            fail("{} bus: range {:#x}+{:#x} overlaps {:#x}", name_, base, length, previous->first);
        }
    }
    ranges_.emplace(base, Range{length, std::move(device)});
}

bool Bus::remove(uint64_t base) {
    std::unique_lock lock(mutex_);
    return ranges_.erase(base) == 1;
}

std::pair<std::shared_ptr<BusDevice>, uint64_t> Bus::find(uint64_t address, uint64_t size) const {
    std::shared_lock lock(mutex_);
    auto after = ranges_.upper_bound(address);
    if (after == ranges_.begin()) {
        return {nullptr, 0};
    }
    const auto& [base, range] = *std::prev(after);
    uint64_t offset = address - base;
    if (offset >= range.length || size > range.length - offset) {
        return {nullptr, 0};
    }
    return {range.device, offset};
}

bool Bus::read(uint64_t address, std::span<uint8_t> data) const {
    auto [device, offset] = find(address, data.size());
    if (!device) {
        std::fill(data.begin(), data.end(), 0xff);
        return false;
    }
    device->read(offset, data);
    return true;
}

bool Bus::write(uint64_t address, std::span<const uint8_t> data) const {
    auto [device, offset] = find(address, data.size());
    if (!device) {
        return false;
    }
    device->write(offset, data);
    return true;
}

}  // namespace vireo
