#include "devices/legacy/cmos_rtc.h"

#include <algorithm>

#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo {
namespace {

constexpr uint64_t kIndexPort = 0;
constexpr uint64_t kDataPort = 1;
static_assert(kDataPort + 1 == CmosRtc::kSize);
constexpr uint8_t kIndexMask = 0x7f;

// Clock registers.
constexpr uint8_t kSeconds = 0x00;
constexpr uint8_t kMinutes = 0x02;
constexpr uint8_t kHours = 0x04;
constexpr uint8_t kDayOfWeek = 0x06;
constexpr uint8_t kDayOfMonth = 0x07;
constexpr uint8_t kMonth = 0x08;
constexpr uint8_t kYear = 0x09;
constexpr uint8_t kRegisterA = 0x0a;
constexpr uint8_t kRegisterB = 0x0b;
constexpr uint8_t kRegisterC = 0x0c;
constexpr uint8_t kRegisterD = 0x0d;
constexpr uint8_t kCentury = 0x32;  // where the FADT's CENTURY field points

constexpr uint8_t kRegisterAUpdateInProgress = 0x80;
constexpr uint8_t kRegisterADefault = 0x26;  // 32.768 kHz time base, 1024 Hz rate
constexpr uint8_t kRegisterB24Hour = 0x02;
constexpr uint8_t kRegisterBBinary = 0x04;
constexpr uint8_t kRegisterDValidRam = 0x80;
constexpr uint8_t kHourPm = 0x80;

// Memory-size bytes read by SeaBIOS and other firmware (QEMU's layout).
constexpr uint8_t kBaseMemoryKib = 0x15;      // 16 bits
constexpr uint8_t kExtendedMemoryKib = 0x17;  // 16 bits, RAM from 1 MiB
constexpr uint8_t kExtendedMemoryKibCopy = 0x30;
constexpr uint8_t kMemoryAbove16M = 0x34;  // 16 bits, 64 KiB units, below the PCI hole
constexpr uint8_t kMemoryAbove4G = 0x5b;   // 24 bits, 64 KiB units
constexpr uint8_t kCpuCountMinusOne = 0x5f;

constexpr uint64_t kKib = 1024;
constexpr uint64_t kMib = 1024 * kKib;
constexpr uint64_t kBaseMemory = 640 * kKib;
constexpr uint32_t kMaxCpus = 256;

}  // namespace

CmosRtc::CmosRtc(uint64_t ram_size, uint32_t cpu_count, Clock clock) : clock_(std::move(clock)) {
    if (!clock_) {
        fail("rtc: a clock is required");
    }
    if (cpu_count == 0 || cpu_count > kMaxCpus) {
        fail("rtc: cpu count {} out of range, allowed 1..{}", cpu_count, kMaxCpus);
    }
    cmos_[kRegisterA] = kRegisterADefault;
    cmos_[kRegisterB] = kRegisterB24Hour;  // BCD, 24-hour: what PC firmware sets up
    set_memory_sizes(ram_size, cpu_count);
}

void CmosRtc::set_memory_sizes(uint64_t ram_size, uint32_t cpu_count) {
    uint64_t low = std::min(ram_size, x86::kLowRamEnd);
    uint64_t high = ram_size - low;
    auto put = [this](uint8_t index, uint64_t value, uint64_t max, int bytes) {
        value = std::min(value, max);
        for (int i = 0; i < bytes; ++i) {
            cmos_[index + i] = static_cast<uint8_t>(value >> (8 * i));
        }
    };
    put(kBaseMemoryKib, std::min(low, kBaseMemory) / kKib, 0xffff, 2);
    uint64_t extended = low > kMib ? (low - kMib) / kKib : 0;
    put(kExtendedMemoryKib, extended, 0xffff, 2);
    put(kExtendedMemoryKibCopy, extended, 0xffff, 2);
    put(kMemoryAbove16M, low > 16 * kMib ? (low - 16 * kMib) / (64 * kKib) : 0, 0xffff, 2);
    put(kMemoryAbove4G, high / (64 * kKib), 0xff'ffff, 3);
    cmos_[kCpuCountMinusOne] = static_cast<uint8_t>(cpu_count - 1);
}

// A wider access is split into byte accesses at consecutive ports, as on ISA.
void CmosRtc::read(uint64_t offset, std::span<uint8_t> data) {
    size_t inside = offset < kSize ? std::min<uint64_t>(data.size(), kSize - offset) : 0;
    std::fill(data.begin() + static_cast<std::ptrdiff_t>(inside), data.end(), 0xff);
    if (inside < data.size()) {
        log_.warn("{}-byte read at offset {:#x} reaches past the 2 ports", data.size(), offset);
    }
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < inside; ++i) {
        // The index port is write-only on PCs.
        data[i] = offset + i == kIndexPort ? 0xff : read_register(index_);
    }
}

void CmosRtc::write(uint64_t offset, std::span<const uint8_t> data) {
    size_t inside = offset < kSize ? std::min<uint64_t>(data.size(), kSize - offset) : 0;
    if (inside < data.size()) {
        log_.warn("{}-byte write at offset {:#x} reaches past the 2 ports", data.size(), offset);
    }
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < inside; ++i) {
        if (offset + i == kIndexPort) {
            index_ = data[i] & kIndexMask;
        } else {
            write_register(index_, data[i]);
        }
    }
}

uint8_t CmosRtc::read_register(uint8_t index) {
    switch (index) {
        case kSeconds:
            return encode(guest_time().tm_sec);
        case kMinutes:
            return encode(guest_time().tm_min);
        case kHours:
            return encode_hour(guest_time().tm_hour);
        case kDayOfWeek:
            return encode(guest_time().tm_wday + 1);  // 1 = Sunday
        case kDayOfMonth:
            return encode(guest_time().tm_mday);
        case kMonth:
            return encode(guest_time().tm_mon + 1);
        case kYear:
            return encode((guest_time().tm_year + 1900) % 100);
        case kCentury:
            return encode((guest_time().tm_year + 1900) / 100);
        case kRegisterA:
            return cmos_[kRegisterA] & ~kRegisterAUpdateInProgress;
        case kRegisterC:
            return 0;  // no interrupt flags ever set (reading would clear them)
        case kRegisterD:
            return kRegisterDValidRam;
        default:
            return cmos_[index];
    }
}

void CmosRtc::write_register(uint8_t index, uint8_t value) {
    std::tm time = guest_time();
    switch (index) {
        case kSeconds:
            time.tm_sec = decode(value);
            break;
        case kMinutes:
            time.tm_min = decode(value);
            break;
        case kHours:
            time.tm_hour = decode_hour(value);
            break;
        case kDayOfMonth:
            time.tm_mday = decode(value);
            break;
        case kMonth:
            time.tm_mon = decode(value) - 1;
            break;
        case kYear:
            time.tm_year = (time.tm_year + 1900) / 100 * 100 + decode(value) - 1900;
            break;
        case kCentury:
            time.tm_year = decode(value) * 100 + (time.tm_year + 1900) % 100 - 1900;
            break;
        case kDayOfWeek:
            return;  // follows from the date
        case kRegisterA:
            cmos_[kRegisterA] = value & ~kRegisterAUpdateInProgress;
            return;
        case kRegisterC:
        case kRegisterD:
            return;  // read-only
        default:
            cmos_[index] = value;
            return;
    }
    // Out-of-range fields (a guest writing 0x99 to the month) are normalised by timegm.
    std::time_t set = ::timegm(&time);
    if (set == -1) {
        log_.warn("guest set an unrepresentable time (register {:#04x} = {:#04x})", index, value);
        return;
    }
    offset_ = set - clock_();
}

std::tm CmosRtc::guest_time() const {
    std::time_t now = clock_() + offset_;
    std::tm time{};
    if (::gmtime_r(&now, &time) == nullptr) {
        return std::tm{};
    }
    return time;
}

uint8_t CmosRtc::encode(int value) const {
    if (cmos_[kRegisterB] & kRegisterBBinary) {
        return static_cast<uint8_t>(value);
    }
    return static_cast<uint8_t>((value / 10 % 10) << 4 | value % 10);
}

int CmosRtc::decode(uint8_t value) const {
    if (cmos_[kRegisterB] & kRegisterBBinary) {
        return value;
    }
    return (value >> 4) * 10 + (value & 0x0f);
}

uint8_t CmosRtc::encode_hour(int hour) const {
    if (cmos_[kRegisterB] & kRegisterB24Hour) {
        return encode(hour);
    }
    int twelve = hour % 12 == 0 ? 12 : hour % 12;
    return static_cast<uint8_t>(encode(twelve) | (hour >= 12 ? kHourPm : 0));
}

int CmosRtc::decode_hour(uint8_t value) const {
    if (cmos_[kRegisterB] & kRegisterB24Hour) {
        return decode(value);
    }
    int hour = decode(value & ~kHourPm) % 12;
    return (value & kHourPm) ? hour + 12 : hour;
}

}  // namespace vireo
