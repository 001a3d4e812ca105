#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>

#include "base/rate_limited_log.h"
#include "devices/bus_device.h"
#include "devices/interrupts.h"

namespace vireo {

// The ACPI fixed-hardware PM1a registers, one 6-byte port range at
// x86::kAcpiPm1aEventPort:
//   offset 0  PM1a_STS (16 bits, write 1 to clear)
//   offset 2  PM1a_EN  (16 bits)
//   offset 4  PM1a_CNT (16 bits; x86::kAcpiPm1aControlPort)
// Registers may be accessed a byte, a word or a dword at a time.
//
// The machine is always in ACPI mode: SCI_EN reads set and the FADT needs no
// SMI command port. press_power_button() sets PWRBTN_STS and raises the SCI (GSI
// x86::kSciInterrupt, level-triggered, active high; level = a status bit is set
// whose enable bit is set): the guest's ACPI driver answers with an S5 request,
// which calls on_power_off. Other sleep types are not supported: the write is
// logged and WAK_STS set at once, as if the machine woke immediately, so a guest
// waiting for the wake never hangs.
class AcpiPm final : public BusDevice {
public:
    // Called on a vCPU thread without the device's lock held.
    using PowerOffCallback = std::function<void()>;

    static constexpr uint64_t kSize = 6;

    // Throws vireo::Error if sci or on_power_off is empty.
    AcpiPm(std::shared_ptr<IrqLine> sci, PowerOffCallback on_power_off);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // The VMM's request for a graceful shutdown; safe from any thread.
    void press_power_button();

private:
    void update_sci();  // locked

    const std::shared_ptr<IrqLine> sci_;
    const PowerOffCallback on_power_off_;
    RateLimitedLog log_{"acpi-pm"};

    std::mutex mutex_;
    uint16_t status_ = 0;
    uint16_t enable_ = 0;
    uint16_t control_ = 0;  // BM_RLD and SLP_TYP; the rest is write-only or fixed
    bool sci_level_ = false;
};

}  // namespace vireo
