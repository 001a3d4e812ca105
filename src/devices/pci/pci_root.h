#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/rate_limited_log.h"
#include "devices/bus.h"
#include "devices/bus_device.h"
#include "devices/pci/pci_device.h"

namespace vireo {

// PCI bus 0 behind one host bridge (00:00.0, vendor 0x1b36 device 0x0008, like
// QEMU's "gpex"/generic host bridge). Functions are single-function devices in
// slots 1..31. The root places each BAR on the MMIO bus it was given, and
// follows the guest when it moves a BAR or toggles memory decoding; a move onto
// an occupied range is refused (the BAR stays where it was) and logged.
//
// Config accesses arrive through PciConfigIo (ports 0xCF8-0xCFF) and
// PciConfigMmio (ECAM), both below, and are serialized here.
class PciRoot {
public:
    static constexpr int kSlots = 32;

    // BARs are pre-assigned from [window_start, window_start + window_size),
    // naturally aligned. The bus must outlive the root.
    PciRoot(Bus& mmio_bus, uint64_t window_start, uint64_t window_size);
    ~PciRoot();
    PciRoot(const PciRoot&) = delete;
    PciRoot& operator=(const PciRoot&) = delete;

    // Puts `device` in the next free slot, assigns its BARs from the window,
    // turns memory decoding on and maps the BARs, as firmware would. Returns the
    // slot (PCI device number). Throws vireo::Error when the bus or the window is
    // full.
    uint8_t add_device(std::shared_ptr<PciDevice> device);

    // Bus-0 config accesses. Absent functions read all-ones and ignore writes.
    void config_read(uint8_t slot, uint8_t function, uint32_t offset, std::span<uint8_t> data);
    void config_write(uint8_t slot, uint8_t function, uint32_t offset,
                      std::span<const uint8_t> data);

    // Where BAR `bar` of the device in `slot` is mapped now, if it is.
    std::optional<uint64_t> bar_mapping(uint8_t slot, uint8_t bar) const;

private:
    struct Slot {
        std::shared_ptr<PciDevice> device;
        std::vector<PciBar> bars;
        std::array<std::optional<uint64_t>, pci::kBarCount> mapped;
        std::array<std::optional<uint64_t>, pci::kBarCount> refused;
    };

    Slot* find(uint8_t slot, uint8_t function);
    // Makes the MMIO bus match what the function's BARs and command register say.
    void update_mappings(uint8_t slot_number, Slot& slot);
    std::optional<uint64_t> programmed_address(Slot& slot, const PciBar& bar, bool decoding);

    Bus& mmio_bus_;
    uint64_t window_next_;
    uint64_t window_end_;
    mutable std::mutex mutex_;
    std::array<std::optional<Slot>, kSlots> slots_;
    RateLimitedLog log_{"PCI"};
};

// Configuration mechanism #1: one 8-port range at 0xCF8. A dword at 0xCF8 is
// the address register (bit 31 enable, bus 23:16, device 15:11, function 10:8,
// register 7:2); 0xCFC-0xCFF is the data window, byte/word/dword at the offset
// the port adds. Other accesses to 0xCF8-0xCFB are ignored (read all-ones).
class PciConfigIo : public BusDevice {
public:
    static constexpr uint64_t kSize = 8;

    // Holds the root weakly: the machine owns it, and the root holds the bus.
    explicit PciConfigIo(const std::shared_ptr<PciRoot>& root) : root_(root) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    std::weak_ptr<PciRoot> root_;
    std::mutex mutex_;
    uint32_t address_ = 0;
};

// ECAM (PCIe enhanced configuration access), bus 0 only: offset =
// device << 15 | function << 12 | register. Insert it kPciEcamSize long.
class PciConfigMmio : public BusDevice {
public:
    explicit PciConfigMmio(const std::shared_ptr<PciRoot>& root) : root_(root) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    std::weak_ptr<PciRoot> root_;
};

}  // namespace vireo
