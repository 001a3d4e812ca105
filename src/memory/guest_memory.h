#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace vireo {

// Guest RAM: one private anonymous mapping in the VMM, as QEMU's default RAM
// is: lazily allocated, 2 MiB aligned and advised for transparent huge pages
// (which a default host gives anonymous memory, not shmem), and of the kind
// the kernel's page sharing (KSM) can merge. Guest-physical ranges ("regions")
// are slices of it, which leaves room for holes such as x86's PCI window
// below 4 GiB.
//
// Every access from device code goes through the checked accessors below, which
// refuse a range that is not wholly inside one region: a guest address never
// turns into a host pointer outside guest RAM.
class GuestMemory {
public:
    struct Range {
        uint64_t guest_address;
        uint64_t size;
    };
    struct Region {
        uint64_t guest_address;
        uint64_t size;
        uint8_t* host;  // start of this region in the VMM's mapping
    };

    // Ranges must be sorted, disjoint and 4 KiB aligned. Throws vireo::Error.
    static GuestMemory create(std::vector<Range> ranges);

    GuestMemory(GuestMemory&&) noexcept;
    GuestMemory& operator=(GuestMemory&&) noexcept;
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;
    ~GuestMemory();

    std::span<const Region> regions() const { return regions_; }
    uint64_t total_size() const { return mapping_size_; }
    // Whether the host backs guest RAM with transparent huge pages, and if not,
    // why (transparent_hugepage/enabled is 'never').
    bool huge_pages() const { return huge_pages_why_not_.empty(); }
    const std::string& huge_pages_why_not() const { return huge_pages_why_not_; }

    // [address, address + length) wholly inside one region.
    bool contains(uint64_t address, uint64_t length) const;
    // The host view of a guest range, or nullopt if it is not wholly guest RAM.
    std::optional<std::span<uint8_t>> span(uint64_t address, uint64_t length) const;
    bool read(uint64_t address, void* out, uint64_t length) const;
    bool write(uint64_t address, const void* in, uint64_t length) const;
    // Makes the range read as zeroes. Whole pages are given back to the host
    // (MADV_DONTNEED) instead of written, so zeroing a large bss neither costs
    // time nor makes the pages resident.
    bool zero(uint64_t address, uint64_t length) const;

    template <typename T>
    std::optional<T> read_object(uint64_t address) const {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        if (!read(address, &value, sizeof(T))) {
            return std::nullopt;
        }
        return value;
    }
    template <typename T>
    bool write_object(uint64_t address, const T& value) const {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(address, &value, sizeof(T));
    }

    // Bytes of guest RAM the host has actually allocated (resident pages).
    uint64_t resident_bytes() const;

private:
    GuestMemory() = default;
    const Region* find(uint64_t address, uint64_t length) const;

    uint8_t* reservation_ = nullptr;  // the aligned reservation, unmapped as a whole
    uint64_t reservation_size_ = 0;
    uint64_t mapping_size_ = 0;
    std::string huge_pages_why_not_;
    std::vector<Region> regions_;
};

}  // namespace vireo
