#pragma once

// qcow2's on-disk layout (QEMU docs/interop/qcow2.txt). Every number on disk is
// big-endian; BigEndian<T> is the one place that converts.

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vireo::qcow2 {

template <typename T>
struct BigEndian {
    uint8_t bytes[sizeof(T)];

    T get() const {
        T value = 0;
        for (uint8_t b : bytes) {
            value = static_cast<T>((value << 8) | b);
        }
        return value;
    }
    void set(T value) {
        for (size_t i = sizeof(T); i-- > 0;) {
            bytes[i] = static_cast<uint8_t>(value & 0xff);
            value = static_cast<T>(value >> 8);
        }
    }
};
using Be16 = BigEndian<uint16_t>;
using Be32 = BigEndian<uint32_t>;
using Be64 = BigEndian<uint64_t>;

// An element of a big-endian table (L1, L2, refcount table and blocks) kept in
// its on-disk form in memory.
template <typename T>
T load(const uint8_t* table, size_t index) {
    BigEndian<T> value;
    std::memcpy(&value, table + index * sizeof(T), sizeof(T));
    return value.get();
}
template <typename T>
void store(uint8_t* table, size_t index, T value) {
    BigEndian<T> be;
    be.set(value);
    std::memcpy(table + index * sizeof(T), &be, sizeof(T));
}

inline constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb"

// The header of versions 2 (first 72 bytes) and 3 (104 bytes and more).
struct Header {
    Be32 magic;
    Be32 version;
    Be64 backing_file_offset;
    Be32 backing_file_size;
    Be32 cluster_bits;
    Be64 size;
    Be32 crypt_method;
    Be32 l1_size;
    Be64 l1_table_offset;
    Be64 refcount_table_offset;
    Be32 refcount_table_clusters;
    Be32 nb_snapshots;
    Be64 snapshots_offset;
    // Version 3 from here on.
    Be64 incompatible_features;
    Be64 compatible_features;
    Be64 autoclear_features;
    Be32 refcount_order;
    Be32 header_length;
};
static_assert(sizeof(Header) == 104);
static_assert(offsetof(Header, l1_size) == 36);
static_assert(offsetof(Header, refcount_table_offset) == 48);
static_assert(offsetof(Header, nb_snapshots) == 60);
static_assert(offsetof(Header, incompatible_features) == 72);
static_assert(offsetof(Header, header_length) == 100);
inline constexpr size_t kHeaderV2Length = 72;

// Incompatible feature bits.
inline constexpr uint64_t kIncompatDirty = 1 << 0;
inline constexpr uint64_t kIncompatCorrupt = 1 << 1;
inline constexpr uint64_t kIncompatDataFile = 1 << 2;
inline constexpr uint64_t kIncompatCompression = 1 << 3;
inline constexpr uint64_t kIncompatExtendedL2 = 1 << 4;
inline constexpr uint64_t kIncompatKnown = kIncompatDirty | kIncompatCorrupt;
// Compatible feature bit 0: lazy refcounts.
inline constexpr uint64_t kCompatLazyRefcounts = 1 << 0;

struct HeaderExtension {
    Be32 type;
    Be32 length;
};
static_assert(sizeof(HeaderExtension) == 8);
inline constexpr uint32_t kExtEnd = 0;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kExtFeatureTable = 0x6803f857;
inline constexpr uint32_t kExtDataFile = 0x44415441;

// One entry of the feature name table extension.
struct FeatureName {
    uint8_t type;  // 0 incompatible, 1 compatible, 2 autoclear
    uint8_t bit;
    char name[46];
};
static_assert(sizeof(FeatureName) == 48);

// L1 and L2 table entries.
inline constexpr uint64_t kOffsetMask = 0x00fffffffffffe00ULL;
inline constexpr uint64_t kCopied = 1ULL << 63;
inline constexpr uint64_t kCompressed = 1ULL << 62;
inline constexpr uint64_t kZero = 1;
inline constexpr uint64_t kL1Reserved = 0x7f000000000001ffULL;
inline constexpr uint64_t kL2Reserved = 0x3f000000000001feULL;
inline constexpr uint64_t kRefTableOffsetMask = 0xfffffffffffffe00ULL;

// A compressed cluster's descriptor: host offset in the low bits, then the
// number of extra 512-byte sectors; the split depends on the cluster size.
struct CompressedDescriptor {
    uint64_t offset;  // not aligned
    uint64_t length;  // bytes from `offset` to the end of its last sector
};
inline CompressedDescriptor decode_compressed(uint64_t entry, unsigned cluster_bits) {
    unsigned shift = 62 - (cluster_bits - 8);
    uint64_t offset = entry & ((1ULL << shift) - 1);
    uint64_t sectors = ((entry >> shift) & ((1ULL << (cluster_bits - 8)) - 1)) + 1;
    return {offset, sectors * 512 - (offset & 511)};
}

// A snapshot table entry's fixed part, followed by extra data, id and name
// and padding to a multiple of 8.
struct SnapshotHeader {
    Be64 l1_table_offset;
    Be32 l1_size;
    Be16 id_str_size;
    Be16 name_size;
    Be32 date_sec;
    Be32 date_nsec;
    Be64 vm_clock_nsec;
    Be32 vm_state_size;
    Be32 extra_data_size;
};
static_assert(sizeof(SnapshotHeader) == 40);

// The extra data version 3 requires (QEMU may add more; unknown bytes are kept).
struct SnapshotExtra {
    Be64 vm_state_size_large;
    Be64 disk_size;
};
static_assert(sizeof(SnapshotExtra) == 16);

// QEMU's limits, so that whatever Vireo makes QEMU can open, and tables that
// a hostile header declares cannot make us allocate absurd amounts of memory.
inline constexpr uint64_t kMaxL1Bytes = 32ULL << 20;
inline constexpr uint64_t kMaxRefcountTableBytes = 8ULL << 20;
inline constexpr uint32_t kMaxSnapshots = 65536;
inline constexpr uint64_t kMaxSnapshotTableBytes = 64ULL << 20;
inline constexpr uint32_t kMaxSnapshotExtraData = 1024;
inline constexpr uint32_t kMaxBackingNameLength = 1023;
inline constexpr unsigned kMinClusterBits = 9;
inline constexpr unsigned kMaxClusterBits = 21;
inline constexpr uint64_t kMaxVirtualSize = 1ULL << 61;
inline constexpr unsigned kRefcountOrder = 4;  // 16-bit refcounts, the only width supported

}  // namespace vireo::qcow2
