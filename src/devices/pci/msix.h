#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "devices/interrupts.h"
#include "devices/pci/config_space.h"

namespace vireo {

// MSI-X (PCI Local Bus 3.0, 6.8.2) for one function: the capability in config
// space, the vector table and the pending-bit array (PBA) that live in a BAR,
// and one MsiVector per table entry. Without MSI-X enabled the function would
// use INTx; Vireo's devices have no INTx, so signals are dropped until the
// guest enables MSI-X. Thread-safe: signal() comes from device threads, table
// accesses from vCPU threads.
class Msix {
public:
    static constexpr uint32_t kCapabilitySize = 12;
    static constexpr uint64_t kEntrySize = 16;
    static constexpr uint16_t kControlEnable = 1 << 15;
    static constexpr uint16_t kControlFunctionMask = 1 << 14;
    static constexpr uint32_t kVectorControlMask = 1;

    // Creates `vector_count` (1..2048) vectors through `controller`.
    Msix(MsiController& controller, uint16_t vector_count);

    uint16_t vector_count() const { return static_cast<uint16_t>(vectors_.size()); }
    uint64_t table_size() const { return vectors_.size() * kEntrySize; }
    uint64_t pba_size() const { return (vectors_.size() + 63) / 64 * 8; }

    // Appends the MSI-X capability to `config`: table and PBA in BAR `bar` at the
    // given offsets (8-byte aligned). Returns the capability offset.
    uint8_t add_capability(PciConfigSpace& config, uint8_t bar, uint32_t table_offset,
                           uint32_t pba_offset);
    // Picks up the enable and function-mask bits after a guest config write.
    void config_written(const PciConfigSpace& config);

    // Guest accesses, offsets relative to the table / PBA.
    void table_read(uint64_t offset, std::span<uint8_t> data);
    void table_write(uint64_t offset, std::span<const uint8_t> data);
    void pba_read(uint64_t offset, std::span<uint8_t> data);

    bool enabled() const;
    // Sends `vector` if MSI-X is on and the vector unmasked; if masked, sets its
    // pending bit instead and sends it once unmasked.
    void signal(uint16_t vector);
    // The vector's MsiVector::direct_fd() while MSI-X is on and `vector`
    // unmasked, -1 otherwise (and for a vector the table does not have).
    int direct_fd(uint16_t vector) const;

private:
    struct Entry {
        uint32_t address_low = 0;
        uint32_t address_high = 0;
        uint32_t data = 0;
        uint32_t control = kVectorControlMask;  // masked after reset
    };
    static_assert(sizeof(Entry) == kEntrySize);

    bool masked(size_t vector) const {
        return function_masked_ || (entries_[vector].control & kVectorControlMask) != 0;
    }
    // Delivers the pending vectors that are no longer masked.
    void deliver_pending();

    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<MsiVector>> vectors_;
    std::vector<Entry> entries_;
    std::vector<bool> pending_;
    uint8_t capability_ = 0;
    bool enabled_ = false;
    bool function_masked_ = false;
};

}  // namespace vireo
