#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>

#include "base/rate_limited_log.h"
#include "devices/bus_device.h"

namespace vireo {

// The i8042 keyboard controller, kept for what guests use it for: probing the
// controller and resetting the machine (Linux's reboot=k, the BIOS's 0xFE pulse).
// No keyboard or mouse is attached: bytes written for the keyboard are ignored and
// the controller raises no interrupt.
//
// The controller answers two ports, data (x86::kI8042Port) and status/command
// (x86::kI8042Port + 4). They are inserted on the port bus as two 1-byte
// I8042Port ranges rather than one 0x60..0x64 range, so that 0x61 (system control
// port B, the PC speaker gate, handled by KVM's in-kernel PIT) stays free:
//
//   auto i8042 = std::make_shared<I8042>(on_reset);
//   pio.insert(x86::kI8042Port, 1, std::make_shared<I8042Port>(i8042, I8042Port::Kind::Data));
//   pio.insert(x86::kI8042Port + 4, 1,
//              std::make_shared<I8042Port>(i8042, I8042Port::Kind::Command));
class I8042 {
public:
    // Called on a vCPU thread, without the controller's lock, each time the guest
    // pulses the reset line.
    using ResetCallback = std::function<void()>;

    // Throws vireo::Error if on_reset is empty.
    explicit I8042(ResetCallback on_reset);

    uint8_t read_data();
    void write_data(uint8_t value);
    uint8_t read_status();
    void write_command(uint8_t command);

private:
    void put_output(uint8_t value);  // locked

    const ResetCallback on_reset_;

    std::mutex mutex_;
    uint8_t config_;  // the "command byte" (controller RAM byte 0)
    uint8_t output_port_;
    uint8_t output_ = 0;  // output buffer; reads repeat it once consumed
    bool output_full_ = false;
    bool last_was_command_ = false;  // status bit 3
    uint8_t pending_command_ = 0;    // a command waiting for its data byte, or 0
};

// One of the controller's two ports as a bus device (1 byte). A wider access acts
// on its low byte (the other bytes read 0xff); offsets past the port read 0xff and
// drop writes. Both are logged.
class I8042Port final : public BusDevice {
public:
    enum class Kind { Data, Command };

    // Throws vireo::Error if controller is null.
    I8042Port(std::shared_ptr<I8042> controller, Kind kind);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    const std::shared_ptr<I8042> controller_;
    const Kind kind_;
    RateLimitedLog log_{"i8042"};
};

}  // namespace vireo
