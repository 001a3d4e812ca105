#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

namespace vireo {

// Offsets and bits of the type-0 PCI configuration header (PCI Local Bus 3.0, 6.1).
namespace pci {
inline constexpr uint32_t kVendorId = 0x00;
inline constexpr uint32_t kDeviceId = 0x02;
inline constexpr uint32_t kCommand = 0x04;
inline constexpr uint32_t kStatus = 0x06;
inline constexpr uint32_t kRevisionId = 0x08;
inline constexpr uint32_t kClassCode = 0x09;  // 3 bytes: prog-if, subclass, class
inline constexpr uint32_t kCacheLineSize = 0x0c;
inline constexpr uint32_t kHeaderType = 0x0e;
inline constexpr uint32_t kBar0 = 0x10;
inline constexpr uint32_t kSubsystemVendorId = 0x2c;
inline constexpr uint32_t kSubsystemId = 0x2e;
inline constexpr uint32_t kCapabilitiesPointer = 0x34;
inline constexpr uint32_t kInterruptLine = 0x3c;
inline constexpr uint32_t kInterruptPin = 0x3d;

inline constexpr uint16_t kCommandIoSpace = 1 << 0;
inline constexpr uint16_t kCommandMemorySpace = 1 << 1;
inline constexpr uint16_t kCommandBusMaster = 1 << 2;
inline constexpr uint16_t kCommandInterruptDisable = 1 << 10;
inline constexpr uint16_t kStatusCapabilitiesList = 1 << 4;

inline constexpr uint32_t kBarMemory64 = 0x4;  // type bits 2:1 = 10b
inline constexpr uint32_t kBarPrefetchable = 0x8;
inline constexpr uint32_t kBarMemoryFlagsMask = 0xf;  // bits a memory BAR reserves for flags

inline constexpr uint8_t kCapabilityMsix = 0x11;
inline constexpr uint8_t kCapabilityVendor = 0x09;

inline constexpr uint32_t kHeaderSize = 256;     // conventional configuration space
inline constexpr uint32_t kExtendedSize = 4096;  // what ECAM decodes per function
inline constexpr int kBarCount = 6;
}  // namespace pci

struct PciIds {
    uint16_t vendor_id = 0;
    uint16_t device_id = 0;
    uint8_t revision_id = 0;
    uint32_t class_code = 0;  // class << 16 | subclass << 8 | prog-if
    uint16_t subsystem_vendor_id = 0;
    uint16_t subsystem_id = 0;
    uint8_t interrupt_pin = 0;  // 0: none, 1..4: INTA#..INTD#
};

// A memory BAR a function asks for. Sizes are powers of two, at least 16 bytes.
struct PciBar {
    uint8_t index = 0;  // 0..5; a 64-bit BAR also takes index + 1
    uint64_t size = 0;
    bool is_64bit = false;
    bool prefetchable = false;
};

// The configuration space of one PCI function: a type-0 header plus a capability
// list, 4 KiB as ECAM sees it (everything past the 256-byte header reads 0).
// Each byte has a write mask: guest writes change only the bits the mask allows,
// which is all the BAR sizing protocol needs (write all-ones, read back
// ~(size - 1) | flags). Not thread-safe: the owning device guards it.
class PciConfigSpace {
public:
    explicit PciConfigSpace(const PciIds& ids);

    // Declares a memory BAR. Throws vireo::Error for a bad index, size or overlap
    // with another BAR (device-model bugs, not guest errors).
    void add_bar(const PciBar& bar);

    // Appends a capability to the list and returns its offset. `bytes` is the
    // whole capability: bytes[0] its ID; bytes[1] (next pointer) is filled in here.
    // `writable` (empty, or as long as `bytes`) is the guest write mask of each byte.
    // Throws vireo::Error when the header has no room left.
    uint8_t add_capability(std::span<const uint8_t> bytes, std::span<const uint8_t> writable = {});

    // Guest accesses: any offset and width; bytes past 4 KiB read 0 and ignore writes.
    void read(uint32_t offset, std::span<uint8_t> data) const;
    void write(uint32_t offset, std::span<const uint8_t> data);

    // Device-side access that ignores the write masks (capability contents, status).
    template <typename T>
    T load(uint32_t offset) const {
        static_assert(std::is_trivially_copyable_v<T>);
        check_range(offset, sizeof(T));
        T value;
        std::memcpy(&value, bytes_.data() + offset, sizeof(T));
        return value;
    }
    template <typename T>
    void store(uint32_t offset, const T& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        check_range(offset, sizeof(T));
        std::memcpy(bytes_.data() + offset, &value, sizeof(T));
    }

    uint16_t command() const { return load<uint16_t>(pci::kCommand); }
    bool memory_enabled() const { return (command() & pci::kCommandMemorySpace) != 0; }
    // The address programmed in a declared BAR (whether or not decoding is on).
    std::optional<uint64_t> bar_address(uint8_t index) const;
    std::optional<PciBar> bar(uint8_t index) const;

private:
    // Throws vireo::Error: a device-side offset past the space is a bug in the model.
    void check_range(uint32_t offset, size_t size) const;

    std::array<uint8_t, pci::kExtendedSize> bytes_{};
    std::array<uint8_t, pci::kExtendedSize> writable_{};
    std::array<std::optional<PciBar>, pci::kBarCount> bars_{};
    uint8_t last_capability_ = 0;
    uint32_t next_capability_ = 0x40;  // first byte after the standard header
};

}  // namespace vireo
