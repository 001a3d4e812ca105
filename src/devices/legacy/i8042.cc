#include "devices/legacy/i8042.h"

#include <algorithm>

#include "base/error.h"

namespace vireo {
namespace {

constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;
constexpr uint8_t kStatusLastWasCommand = 0x08;
constexpr uint8_t kStatusNotInhibited = 0x10;

constexpr uint8_t kConfigKeyboardInterrupt = 0x01;
constexpr uint8_t kConfigSystemFlag = 0x04;
constexpr uint8_t kConfigKeyboardDisabled = 0x10;
constexpr uint8_t kConfigAuxDisabled = 0x20;
constexpr uint8_t kConfigTranslate = 0x40;

constexpr uint8_t kOutputPortReset = 0x01;  // active low
constexpr uint8_t kOutputPortA20 = 0x02;

constexpr uint8_t kCommandReadConfig = 0x20;
constexpr uint8_t kCommandWriteConfig = 0x60;
constexpr uint8_t kCommandDisableAux = 0xa7;
constexpr uint8_t kCommandEnableAux = 0xa8;
constexpr uint8_t kCommandSelfTest = 0xaa;
constexpr uint8_t kCommandKeyboardTest = 0xab;
constexpr uint8_t kCommandDisableKeyboard = 0xad;
constexpr uint8_t kCommandEnableKeyboard = 0xae;
constexpr uint8_t kCommandReadOutputPort = 0xd0;
constexpr uint8_t kCommandWriteOutputPort = 0xd1;
constexpr uint8_t kCommandPulseFirst = 0xf0;  // 0xf0-0xff pulse output port bits 3:0

constexpr uint8_t kSelfTestPassed = 0x55;
constexpr uint8_t kInterfaceTestPassed = 0x00;

}  // namespace

I8042::I8042(ResetCallback on_reset)
    : on_reset_(std::move(on_reset)),
      // What the firmware leaves behind: POST passed, keyboard interrupt on, scan
      // code translation on.
      config_(kConfigKeyboardInterrupt | kConfigSystemFlag | kConfigTranslate),
      output_port_(kOutputPortReset | kOutputPortA20) {
    if (!on_reset_) {
        fail("i8042: a reset callback is required");
    }
}

uint8_t I8042::read_data() {
    std::lock_guard lock(mutex_);
    output_full_ = false;
    return output_;
}

uint8_t I8042::read_status() {
    std::lock_guard lock(mutex_);
    uint8_t status = kStatusNotInhibited;
    if (output_full_) {
        status |= kStatusOutputFull;
    }
    if (config_ & kConfigSystemFlag) {
        status |= kStatusSystemFlag;
    }
    if (last_was_command_) {
        status |= kStatusLastWasCommand;
    }
    return status;
}

void I8042::write_data(uint8_t value) {
    bool reset = false;
    {
        std::lock_guard lock(mutex_);
        last_was_command_ = false;
        switch (std::exchange(pending_command_, 0)) {
            case kCommandWriteConfig:
                config_ = value;
                break;
            case kCommandWriteOutputPort:
                // A20 masking is not emulated; the reset bit is.
                output_port_ = value;
                reset = !(value & kOutputPortReset);
                break;
            default:
                break;  // a byte for the keyboard, and there is none
        }
    }
    if (reset) {
        on_reset_();
    }
}

void I8042::write_command(uint8_t command) {
    bool reset = false;
    {
        std::lock_guard lock(mutex_);
        last_was_command_ = true;
        pending_command_ = 0;
        switch (command) {
            case kCommandReadConfig:
                put_output(config_);
                break;
            case kCommandWriteConfig:
            case kCommandWriteOutputPort:
                pending_command_ = command;
                break;
            case kCommandDisableAux:
                config_ |= kConfigAuxDisabled;
                break;
            case kCommandEnableAux:
                config_ &= ~kConfigAuxDisabled;
                break;
            case kCommandSelfTest:
                put_output(kSelfTestPassed);
                break;
            case kCommandKeyboardTest:
                put_output(kInterfaceTestPassed);
                break;
            case kCommandDisableKeyboard:
                config_ |= kConfigKeyboardDisabled;
                break;
            case kCommandEnableKeyboard:
                config_ &= ~kConfigKeyboardDisabled;
                break;
            case kCommandReadOutputPort:
                put_output(output_port_);
                break;
            default:
                // 0xf0-0xff pulse the output port bits whose command bit is clear;
                // bit 0 is the reset line (0xfe is the classic reset).
                reset = command >= kCommandPulseFirst && !(command & kOutputPortReset);
                break;  // other commands are ignored
        }
    }
    if (reset) {
        on_reset_();
    }
}

void I8042::put_output(uint8_t value) {
    output_ = value;
    output_full_ = true;
}

I8042Port::I8042Port(std::shared_ptr<I8042> controller, Kind kind)
    : controller_(std::move(controller)), kind_(kind) {
    if (!controller_) {
        fail("i8042 port: no controller");
    }
}

void I8042Port::read(uint64_t offset, std::span<uint8_t> data) {
    if (data.empty()) {
        return;
    }
    std::fill(data.begin(), data.end(), 0xff);
    if (offset != 0 || data.size() != 1) {
        log_.warn("{}-byte read at offset {:#x} of a 1-byte port", data.size(), offset);
        if (offset != 0) {
            return;
        }
    }
    data[0] = kind_ == Kind::Data ? controller_->read_data() : controller_->read_status();
}

void I8042Port::write(uint64_t offset, std::span<const uint8_t> data) {
    if (data.empty()) {
        return;
    }
    if (offset != 0 || data.size() != 1) {
        log_.warn("{}-byte write at offset {:#x} of a 1-byte port", data.size(), offset);
        if (offset != 0) {
            return;
        }
    }
    if (kind_ == Kind::Data) {
        controller_->write_data(data[0]);
    } else {
        controller_->write_command(data[0]);
    }
}

}  // namespace vireo
