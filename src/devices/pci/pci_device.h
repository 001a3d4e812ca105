#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "devices/pci/config_space.h"

namespace vireo {

// One PCI function as the root complex sees it. Config accesses come from vCPU
// threads, serialized by the PciRoot; BAR accesses come from vCPU threads in
// parallel (the device guards its own state).
class PciDevice {
public:
    virtual ~PciDevice() = default;

    // Offsets are within the function's 4 KiB configuration space; data.size()
    // is the access width. Reads must not have side effects on the BAR mapping:
    // the root reads BARs and the command register back after every write.
    virtual void config_read(uint32_t offset, std::span<uint8_t> data) = 0;
    virtual void config_write(uint32_t offset, std::span<const uint8_t> data) = 0;

    // The memory BARs this function decodes; fixed for its lifetime.
    virtual std::vector<PciBar> bars() const = 0;
    // Guest accesses inside BAR `bar`, offsets relative to its base.
    virtual void bar_read(uint8_t bar, uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void bar_write(uint8_t bar, uint64_t offset, std::span<const uint8_t> data) = 0;

    // The root (re)mapped BAR `bar` at `address` on the MMIO bus, or unmapped it
    // (nullopt: memory decoding off, or the BAR holds address 0).
    virtual void bar_moved(uint8_t /*bar*/, std::optional<uint64_t> /*address*/) {}
};

}  // namespace vireo
