#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>

#include "devices/bus_device.h"

namespace vireo {

// An address space (port I/O or MMIO) mapping ranges to devices. It knows
// address ranges, not devices' insides. Lookups from vCPU threads run in
// parallel; inserts and removes (a guest moving a PCI BAR) take the lock alone.
class Bus {
public:
    explicit Bus(std::string name) : name_(std::move(name)) {}

    // Throws vireo::Error if [base, base + length) is empty or overlaps a range.
    void insert(uint64_t base, uint64_t length, std::shared_ptr<BusDevice> device);
    // Removes the range that starts at base; returns false if there is none.
    bool remove(uint64_t base);

    // Dispatch one guest access. Returns false when no device owns the address;
    // the caller then reads all-ones and drops writes, as real hardware does.
    bool read(uint64_t address, std::span<uint8_t> data) const;
    bool write(uint64_t address, std::span<const uint8_t> data) const;

private:
    struct Range {
        uint64_t length;
        std::shared_ptr<BusDevice> device;
    };
    // The device whose range holds [address, address + size), with the offset.
    std::pair<std::shared_ptr<BusDevice>, uint64_t> find(uint64_t address, uint64_t size) const;

    std::string name_;
    mutable std::shared_mutex mutex_;
    std::map<uint64_t, Range> ranges_;  // keyed by base
};

}  // namespace vireo
