#include "devices/legacy/acpi_pm.h"

#include <algorithm>

#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo {
namespace {

static_assert(x86::kAcpiPm1aControlPort == x86::kAcpiPm1aEventPort + 4,
              "AcpiPm serves the event and control blocks as one range");

constexpr uint64_t kStatusOffset = 0;
constexpr uint64_t kEnableOffset = 2;
constexpr uint64_t kControlOffset = 4;
static_assert(kControlOffset + 2 == AcpiPm::kSize);

// PM1 status / enable bits that can raise the SCI (ACPI 6.5, 4.8.3.1).
constexpr uint16_t kTimer = 1 << 0;
constexpr uint16_t kGlobal = 1 << 5;
constexpr uint16_t kPowerButton = 1 << 8;
constexpr uint16_t kSleepButton = 1 << 9;
constexpr uint16_t kRtc = 1 << 10;
constexpr uint16_t kSciSources = kTimer | kGlobal | kPowerButton | kSleepButton | kRtc;
constexpr uint16_t kPciExpressWakeDisable = 1 << 14;  // an enable-register bit
constexpr uint16_t kWakeStatus = 1 << 15;

// PM1 control bits (ACPI 6.5, 4.8.3.2.1).
constexpr uint16_t kSciEnable = 1 << 0;
constexpr uint16_t kBusMasterReload = 1 << 1;
constexpr uint16_t kSleepTypeShift = 10;
constexpr uint16_t kSleepTypeMask = 0x7 << kSleepTypeShift;
constexpr uint16_t kSleepEnable = 1 << 13;  // write-only

uint8_t byte_of(uint16_t value, uint64_t byte) {
    return static_cast<uint8_t>(value >> (8 * byte));
}

// `value` with byte `byte` (0 or 1) replaced by `data`.
uint16_t with_byte(uint16_t value, uint64_t byte, uint8_t data) {
    uint16_t mask = static_cast<uint16_t>(0xff << (8 * byte));
    return static_cast<uint16_t>((value & ~mask) | (data << (8 * byte)));
}

}  // namespace

AcpiPm::AcpiPm(std::shared_ptr<IrqLine> sci, PowerOffCallback on_power_off)
    : sci_(std::move(sci)), on_power_off_(std::move(on_power_off)) {
    if (!sci_ || !on_power_off_) {
        fail("acpi-pm: an SCI line and a power-off callback are required");
    }
}

// Each byte of an access goes to its register byte, so byte, word and dword
// accesses all work.
void AcpiPm::read(uint64_t offset, std::span<uint8_t> data) {
    size_t inside = offset < kSize ? std::min<uint64_t>(data.size(), kSize - offset) : 0;
    std::fill(data.begin() + static_cast<std::ptrdiff_t>(inside), data.end(), 0xff);
    if (inside < data.size()) {
        log_.warn("{}-byte read at offset {:#x} reaches past the PM1a registers", data.size(),
                  offset);
    }
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < inside; ++i) {
        uint64_t at = offset + i;
        switch (at & ~uint64_t{1}) {
            case kStatusOffset:
                data[i] = byte_of(status_, at & 1);
                break;
            case kEnableOffset:
                data[i] = byte_of(enable_, at & 1);
                break;
            default:  // kControlOffset
                data[i] = byte_of(control_ | kSciEnable, at & 1);
                break;
        }
    }
}

void AcpiPm::write(uint64_t offset, std::span<const uint8_t> data) {
    size_t inside = offset < kSize ? std::min<uint64_t>(data.size(), kSize - offset) : 0;
    if (inside < data.size()) {
        log_.warn("{}-byte write at offset {:#x} reaches past the PM1a registers", data.size(),
                  offset);
    }
    bool power_off = false;
    {
        std::lock_guard lock(mutex_);
        for (size_t i = 0; i < inside; ++i) {
            uint64_t at = offset + i;
            uint64_t byte = at & 1;
            switch (at & ~uint64_t{1}) {
                case kStatusOffset:
                    status_ &= static_cast<uint16_t>(~with_byte(0, byte, data[i]));
                    break;
                case kEnableOffset:
                    enable_ =
                        with_byte(enable_, byte, data[i]) & (kSciSources | kPciExpressWakeDisable);
                    break;
                default: {  // kControlOffset
                    uint16_t control = with_byte(control_, byte, data[i]);
                    control_ = control & (kBusMasterReload | kSleepTypeMask);
                    if (!(control & kSleepEnable)) {
                        break;
                    }
                    uint16_t type = (control & kSleepTypeMask) >> kSleepTypeShift;
                    if (type == x86::kAcpiS5SleepType) {
                        power_off = true;
                    } else {
                        log_.warn("sleep type {} requested; only S5 (type {}) is supported", type,
                                  x86::kAcpiS5SleepType);
                        status_ |= kWakeStatus;
                    }
                    break;
                }
            }
        }
        update_sci();
    }
    if (power_off) {
        on_power_off_();
    }
}

void AcpiPm::press_power_button() {
    std::lock_guard lock(mutex_);
    status_ |= kPowerButton;
    update_sci();
}

void AcpiPm::update_sci() {
    bool level = (status_ & enable_ & kSciSources) != 0;
    if (level != sci_level_) {
        sci_level_ = level;
        sci_->set_level(level);
    }
}

}  // namespace vireo
