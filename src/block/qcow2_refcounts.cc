#include "block/qcow2_refcounts.h"

#include <algorithm>

#include "base/error.h"
#include "block/disk_image.h"
#include "block/qcow2_format.h"

namespace vireo {

using qcow2::store;

namespace {

uint64_t round_up(uint64_t value, uint64_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

}  // namespace

Qcow2Refcounts::Qcow2Refcounts(ImageFile& file, unsigned cluster_bits, size_t cache_bytes)
    : file_(file),
      cluster_bits_(cluster_bits),
      cluster_size_(uint64_t{1} << cluster_bits),
      cache_(
          file, cluster_size_, cache_bytes,
          [this](uint64_t offset, std::span<const uint8_t> block) { file_.write(offset, block); }) {
}

void Qcow2Refcounts::load(uint64_t table_offset, uint32_t table_clusters) {
    uint64_t file_size = file_.size();
    if (table_offset % cluster_size_ != 0) {
        fail("disk {}: refcount table offset {:#x} is not aligned to a cluster", name(),
             table_offset);
    }
    if (table_clusters == 0 ||
        uint64_t{table_clusters} * cluster_size_ > qcow2::kMaxRefcountTableBytes) {
        fail("disk {}: refcount table of {} clusters (allowed: 1 to {} bytes)", name(),
             table_clusters, qcow2::kMaxRefcountTableBytes);
    }
    uint64_t bytes = uint64_t{table_clusters} * cluster_size_;
    if (table_offset > file_size || bytes > file_size - table_offset) {
        fail(
            "disk {}: refcount table at {:#x} ({} bytes) extends beyond the end of the file "
            "({} bytes)",
            name(), table_offset, bytes, file_size);
    }
    std::vector<uint8_t> raw(bytes);
    file_.read(table_offset, raw);
    table_.resize(bytes / 8);
    for (size_t i = 0; i < table_.size(); ++i) {
        uint64_t entry = qcow2::load<uint64_t>(raw.data(), i);
        if (entry & ~qcow2::kRefTableOffsetMask) {
            fail("disk {}: refcount table entry {} ({:#x}) has reserved bits set", name(), i,
                 entry);
        }
        if (entry % cluster_size_ != 0) {
            fail("disk {}: refcount block {} at {:#x} is not aligned to a cluster", name(), i,
                 entry);
        }
        if (entry != 0 && (entry >= file_size || cluster_size_ > file_size - entry)) {
            fail("disk {}: refcount block {} at {:#x} lies beyond the end of the file", name(), i,
                 entry);
        }
        table_[i] = entry;
        if (entry != 0) {
            block_clusters_.insert(entry >> cluster_bits_);
        }
    }
    table_offset_ = table_offset;
    table_clusters_ = table_clusters;
    end_cluster_ = (file_size + cluster_size_ - 1) >> cluster_bits_;
    free_hint_ = 0;
}

uint64_t Qcow2Refcounts::get(uint64_t cluster) {
    uint64_t block = cluster / entries_per_block();
    if (block >= table_.size() || table_[block] == 0) {
        return 0;
    }
    return qcow2::load<uint16_t>(cache_.get(table_[block]).data(), cluster % entries_per_block());
}

void Qcow2Refcounts::set(uint64_t cluster, uint64_t value) {
    uint64_t block = cluster / entries_per_block();
    if (block >= table_.size() || table_[block] == 0) {
        if (value == 0) {
            return;
        }
        // A block placed elsewhere, for a cluster in use without one (repairs only).
        uint64_t at = allocate(1, [](uint64_t) { return false; });
        if (block < table_.size() && table_[block] != 0) {
            set(at >> cluster_bits_, 0);  // allocating created it already
        } else {
            if (block >= table_.size()) {
                grow_table(block);
            }
            if (table_[block] == 0) {
                std::vector<uint8_t> zeroes(cluster_size_);
                file_.write(at, zeroes);
                file_.sync();
                qcow2::Be64 entry;
                entry.set(at);
                file_.write(table_offset_ + block * 8, {entry.bytes, 8});
                file_.sync();
                table_[block] = at;
                block_clusters_.insert(at >> cluster_bits_);
            } else {
                set(at >> cluster_bits_, 0);
            }
        }
    }
    uint64_t offset = table_[block];
    std::span<uint8_t> data = cache_.get(offset);
    store<uint16_t>(data.data(), cluster % entries_per_block(), static_cast<uint16_t>(value));
    cache_.mark_dirty(offset);
    if (value > 0) {
        end_cluster_ = std::max(end_cluster_, cluster + 1);
    } else {
        free_hint_ = std::min(free_hint_, cluster);
    }
}

void Qcow2Refcounts::update(uint64_t offset, uint64_t length, int64_t addend) {
    if (length == 0) {
        return;
    }
    uint64_t first = offset >> cluster_bits_;
    uint64_t last = (offset + length - 1) >> cluster_bits_;
    for (uint64_t c = first; c <= last; ++c) {
        int64_t value = static_cast<int64_t>(get(c)) + addend;
        if (value < 0) {
            fail("disk {}: refcount underflow: cluster at {:#x} has no reference to drop", name(),
                 c << cluster_bits_);
        }
        if (value > static_cast<int64_t>(max_refcount())) {
            fail("disk {}: refcount overflow: cluster at {:#x} already has {} references", name(),
                 c << cluster_bits_, get(c));
        }
    }
    for (uint64_t c = first; c <= last; ++c) {
        uint64_t value = static_cast<uint64_t>(static_cast<int64_t>(get(c)) + addend);
        set(c, value);
        if (value == 0) {
            freed_.push_back(c);
        }
    }
}

std::vector<uint64_t> Qcow2Refcounts::take_freed() {
    return std::exchange(freed_, {});
}

uint64_t Qcow2Refcounts::allocate(uint64_t count, const MetadataTest& is_metadata) {
    if (count == 0 || count > max_allocation()) {
        // Not a defect of the image: IoError keeps it from being marked corrupt.
        throw IoError(fmt::format("disk {}: cannot allocate {} clusters at once (1 to {})", name(),
                                  count, max_allocation()));
    }
    // Keep the hint on a free cluster, so no search walks the used ones again.
    for (;; ++free_hint_) {
        ensure_block(free_hint_);
        if (get(free_hint_) == 0) {
            break;
        }
    }
    uint64_t start = free_hint_;
    for (;;) {
        bool found = true;
        for (uint64_t k = 0; k < count; ++k) {
            uint64_t cluster = start + k;
            ensure_block(cluster);
            if (get(cluster) != 0) {
                start = cluster + 1;
                found = false;
                break;
            }
            if (is_metadata(cluster) || owns(cluster)) {
                fail("disk {}: corrupt: metadata cluster at {:#x} has refcount 0", name(),
                     cluster << cluster_bits_);
            }
        }
        if (found) {
            break;
        }
    }
    for (uint64_t k = 0; k < count; ++k) {
        set(start + k, 1);
    }
    if (start == free_hint_) {
        free_hint_ = start + count;
    }
    return start << cluster_bits_;
}

bool Qcow2Refcounts::owns(uint64_t cluster) const {
    uint64_t table_first = table_offset_ >> cluster_bits_;
    return (cluster >= table_first && cluster < table_first + table_clusters_) ||
           block_clusters_.count(cluster) != 0;
}

void Qcow2Refcounts::ensure_block(uint64_t cluster) {
    uint64_t block = cluster / entries_per_block();
    if (block >= table_.size()) {
        grow_table(block);
    }
    if (table_[block] != 0) {
        return;
    }
    // Nothing in this block's range is counted yet, so `cluster` is free: the
    // new block lives there and counts itself. It reaches the disk before the
    // table entry that points at it.
    std::vector<uint8_t> data(cluster_size_);
    store<uint16_t>(data.data(), cluster % entries_per_block(), 1);
    uint64_t offset = cluster << cluster_bits_;
    file_.write(offset, data);
    file_.sync();
    qcow2::Be64 entry;
    entry.set(offset);
    file_.write(table_offset_ + block * 8, {entry.bytes, 8});
    file_.sync();
    table_[block] = offset;
    block_clusters_.insert(cluster);
    cache_.drop(offset);
    end_cluster_ = std::max(end_cluster_, cluster + 1);
}

void Qcow2Refcounts::grow_table(uint64_t block_index) {
    const uint64_t per_block = entries_per_block();
    const uint64_t per_cluster = cluster_size_ / 8;
    uint64_t file_clusters = (file_.size() + cluster_size_ - 1) >> cluster_bits_;
    // The new table and the blocks that count it go past everything in use.
    uint64_t start = std::max({end_cluster_, file_clusters, free_hint_});
    uint64_t entries =
        round_up(std::max<uint64_t>(block_index + 1, table_.size() * 2), per_cluster);
    uint64_t table_clusters = 0;
    std::vector<uint64_t> new_blocks;
    for (;;) {
        table_clusters = entries / per_cluster;
        size_t extra = 0;
        for (;;) {
            new_blocks.clear();
            uint64_t end = start + table_clusters + extra;
            for (uint64_t b = start / per_block; b <= (end - 1) / per_block; ++b) {
                if (b >= table_.size() || table_[b] == 0) {
                    new_blocks.push_back(b);
                }
            }
            if (new_blocks.size() <= extra) {
                break;
            }
            extra = new_blocks.size();
        }
        if (new_blocks.empty() || new_blocks.back() < entries) {
            break;
        }
        entries = round_up(new_blocks.back() + 1, per_cluster);
    }
    if (table_clusters * cluster_size_ > qcow2::kMaxRefcountTableBytes) {
        fail("disk {}: the refcount table would exceed {} bytes", name(),
             qcow2::kMaxRefcountTableBytes);
    }
    // The new blocks go right after the table.
    uint64_t end = start + table_clusters + new_blocks.size();

    std::vector<uint64_t> table = table_;
    table.resize(entries, 0);
    std::vector<std::vector<uint8_t>> blocks(new_blocks.size(),
                                             std::vector<uint8_t>(cluster_size_));
    for (size_t j = 0; j < new_blocks.size(); ++j) {
        table[new_blocks[j]] = (start + table_clusters + j) << cluster_bits_;
    }
    for (uint64_t c = start; c < end; ++c) {
        uint64_t b = c / per_block;
        auto it = std::find(new_blocks.begin(), new_blocks.end(), b);
        if (it != new_blocks.end()) {
            store<uint16_t>(blocks[static_cast<size_t>(it - new_blocks.begin())].data(),
                            c % per_block, 1);
        } else {
            std::span<uint8_t> data = cache_.get(table[b]);
            store<uint16_t>(data.data(), c % per_block, 1);
            cache_.mark_dirty(table[b]);
        }
    }
    cache_.write_back();
    for (size_t j = 0; j < new_blocks.size(); ++j) {
        file_.write(table[new_blocks[j]], blocks[j]);
    }
    std::vector<uint8_t> raw(table_clusters * cluster_size_);
    for (size_t i = 0; i < table.size(); ++i) {
        store<uint64_t>(raw.data(), i, table[i]);
    }
    file_.write(start << cluster_bits_, raw);
    file_.sync();

    // One write switches the header to the new table.
    struct {
        qcow2::Be64 offset;
        qcow2::Be32 clusters;
    } fields;
    static_assert(sizeof(fields) == 12);
    fields.offset.set(start << cluster_bits_);
    fields.clusters.set(static_cast<uint32_t>(table_clusters));
    file_.write(offsetof(qcow2::Header, refcount_table_offset),
                {reinterpret_cast<const uint8_t*>(&fields), sizeof(fields)});
    file_.sync();

    uint64_t old_offset = table_offset_;
    uint64_t old_bytes = uint64_t{table_clusters_} * cluster_size_;
    table_ = std::move(table);
    for (size_t j = 0; j < new_blocks.size(); ++j) {
        block_clusters_.insert(start + table_clusters + j);
    }
    table_offset_ = start << cluster_bits_;
    table_clusters_ = static_cast<uint32_t>(table_clusters);
    end_cluster_ = std::max(end_cluster_, end);
    update(old_offset, old_bytes, -1);
}

}  // namespace vireo
