#include "block/table_cache.h"

#include <algorithm>

namespace vireo {

TableCache::TableCache(ImageFile& file, size_t table_size, size_t capacity_bytes, Writer writer)
    : file_(file),
      table_size_(table_size),
      capacity_(std::max<size_t>(2, capacity_bytes / table_size)),
      writer_(std::move(writer)) {}

std::span<uint8_t> TableCache::get(uint64_t offset) {
    auto it = index_.find(offset);
    if (it != index_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        return lru_.front().data;
    }
    std::vector<uint8_t> data(table_size_);
    file_.read(offset, data);
    return insert(offset, std::move(data), false);
}

std::span<uint8_t> TableCache::create(uint64_t offset, std::span<const uint8_t> contents) {
    drop(offset);
    std::vector<uint8_t> data(table_size_);
    std::copy(contents.begin(), contents.end(), data.begin());
    return insert(offset, std::move(data), true);
}

std::span<uint8_t> TableCache::insert(uint64_t offset, std::vector<uint8_t> data, bool dirty) {
    while (lru_.size() >= capacity_) {
        Entry& victim = lru_.back();
        if (victim.dirty) {
            writer_(victim.offset, victim.data);
            --dirty_count_;
        }
        index_.erase(victim.offset);
        lru_.pop_back();
    }
    lru_.push_front({offset, std::move(data), dirty});
    index_[offset] = lru_.begin();
    if (dirty) {
        ++dirty_count_;
    }
    return lru_.front().data;
}

void TableCache::mark_dirty(uint64_t offset) {
    auto it = index_.find(offset);
    if (it != index_.end() && !it->second->dirty) {
        it->second->dirty = true;
        ++dirty_count_;
    }
}

void TableCache::write_back() {
    if (dirty_count_ == 0) {
        return;
    }
    std::vector<Entry*> dirty;
    for (Entry& entry : lru_) {
        if (entry.dirty) {
            dirty.push_back(&entry);
        }
    }
    std::sort(dirty.begin(), dirty.end(),
              [](const Entry* a, const Entry* b) { return a->offset < b->offset; });
    for (Entry* entry : dirty) {
        writer_(entry->offset, entry->data);
        entry->dirty = false;
        --dirty_count_;
    }
}

void TableCache::drop(uint64_t offset) {
    auto it = index_.find(offset);
    if (it == index_.end()) {
        return;
    }
    if (it->second->dirty) {
        --dirty_count_;
    }
    lru_.erase(it->second);
    index_.erase(it);
}

void TableCache::clear() {
    lru_.clear();
    index_.clear();
    dirty_count_ = 0;
}

}  // namespace vireo
