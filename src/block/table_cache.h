#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "block/image_file.h"

namespace vireo {

// A bounded LRU cache of cluster-sized metadata tables (qcow2 L2 tables,
// refcount blocks), kept in their on-disk form. A dirty table is written back
// through `writer` when it is evicted or on write_back(), so the owner decides
// what must reach the disk first. Not thread-safe: the owner's lock guards it.
class TableCache {
public:
    using Writer = std::function<void(uint64_t offset, std::span<const uint8_t> table)>;

    TableCache(ImageFile& file, size_t table_size, size_t capacity_bytes, Writer writer);

    // The table at `offset`, read from the file on a miss. The span stays
    // valid until the next get() or create().
    std::span<uint8_t> get(uint64_t offset);
    // A new table at `offset`, filled with `contents` (zeroes if empty), dirty.
    std::span<uint8_t> create(uint64_t offset, std::span<const uint8_t> contents = {});
    void mark_dirty(uint64_t offset);
    bool has_dirty() const { return dirty_count_ > 0; }
    // Writes every dirty table through the writer, in offset order.
    void write_back();
    // Forgets the table at `offset` without writing it (its cluster was freed).
    void drop(uint64_t offset);
    // Forgets every table; the cache must be clean.
    void clear();

private:
    struct Entry {
        uint64_t offset;
        std::vector<uint8_t> data;
        bool dirty = false;
    };
    std::span<uint8_t> insert(uint64_t offset, std::vector<uint8_t> data, bool dirty);

    ImageFile& file_;
    size_t table_size_;
    size_t capacity_;  // in tables, at least 2
    Writer writer_;
    std::list<Entry> lru_;  // most recently used first
    std::unordered_map<uint64_t, std::list<Entry>::iterator> index_;
    size_t dirty_count_ = 0;
};

}  // namespace vireo
