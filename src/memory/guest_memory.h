#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/unique_fd.h"

namespace vireo {

// Guest RAM: one memfd (so the vSwitch and live migration can map or send it),
// mapped once into the VMM, lazily allocated, 2 MiB aligned and advised for
// transparent huge pages. Guest-physical ranges ("regions") are slices of it,
// which leaves room for holes such as x86's PCI window below 4 GiB.
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
        uint8_t* host;         // start of this region in the VMM's mapping
        uint64_t file_offset;  // offset of the region in the memfd
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
    int fd() const { return memfd_.get(); }
    // Whether the host backs guest RAM with transparent huge pages, and if not,
    // why (memfd RAM is shmem: it needs shmem_enabled to allow huge pages).
    bool huge_pages() const { return huge_pages_why_not_.empty(); }
    const std::string& huge_pages_why_not() const { return huge_pages_why_not_; }

    // [address, address + length) wholly inside one region.
    bool contains(uint64_t address, uint64_t length) const;
    // The host view of a guest range, or nullopt if it is not wholly guest RAM.
    std::optional<std::span<uint8_t>> span(uint64_t address, uint64_t length) const;
    bool read(uint64_t address, void* out, uint64_t length) const;
    bool write(uint64_t address, const void* in, uint64_t length) const;
    // Makes the range read as zeroes. Whole pages are given back to the host
    // (a hole punched in the memfd) instead of written, so zeroing a large
    // bss neither costs time nor makes the pages resident.
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

    // Bytes of guest RAM the host has actually allocated (resident in the memfd).
    uint64_t resident_bytes() const;

private:
    GuestMemory() = default;
    const Region* find(uint64_t address, uint64_t length) const;

    UniqueFd memfd_;
    uint8_t* reservation_ = nullptr;  // the aligned reservation, unmapped as a whole
    uint64_t reservation_size_ = 0;
    uint64_t mapping_size_ = 0;
    std::string huge_pages_why_not_;
    std::vector<Region> regions_;
};

}  // namespace vireo
