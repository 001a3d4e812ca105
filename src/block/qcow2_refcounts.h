#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "block/image_file.h"
#include "block/table_cache.h"

namespace vireo {

// A qcow2 image's reference counts (16-bit entries): the refcount table, a
// cache of refcount blocks, and the cluster allocator. New refcount blocks and
// a grown refcount table reach the disk (synced) before anything points at
// them, so a crash can only leak clusters. Not thread-safe: the image's
// metadata lock guards it.
class Qcow2Refcounts {
public:
    // True for clusters that hold metadata the allocator must never hand out.
    using MetadataTest = std::function<bool(uint64_t cluster)>;

    Qcow2Refcounts(ImageFile& file, unsigned cluster_bits, size_t cache_bytes);

    // Reads and checks the refcount table (entries aligned, inside the file).
    void load(uint64_t table_offset, uint32_t table_clusters);

    uint64_t table_offset() const { return table_offset_; }
    uint32_t table_clusters() const { return table_clusters_; }
    const std::vector<uint64_t>& table() const { return table_; }
    uint64_t max_refcount() const { return 0xffff; }

    uint64_t get(uint64_t cluster);
    // Sets one cluster's refcount, creating its refcount block if needed.
    void set(uint64_t cluster, uint64_t value);
    // Adds `addend` to every cluster overlapping [offset, offset + length).
    // Throws, changing nothing, if a count would leave 0..0xffff.
    void update(uint64_t offset, uint64_t length, int64_t addend);
    // Clusters whose count fell to 0 through update() since the last call.
    std::vector<uint64_t> take_freed();

    // `count` contiguous free clusters, their refcounts set to 1; returns the
    // byte offset of the first. At most max_allocation() clusters.
    uint64_t allocate(uint64_t count, const MetadataTest& is_metadata);
    // A new refcount block takes the first cluster of the range it counts, so
    // only a run shorter than that range is sure to fit between two blocks.
    uint64_t max_allocation() const { return entries_per_block() - 1; }

    bool has_dirty() const { return cache_.has_dirty(); }
    // Writes dirty refcount blocks (the caller syncs).
    void write_back() { cache_.write_back(); }
    // One past the highest cluster known to be in use or allocated.
    uint64_t end_cluster() const { return end_cluster_; }

private:
    uint64_t entries_per_block() const { return cluster_size_ / 2; }
    void ensure_block(uint64_t cluster);
    void grow_table(uint64_t block_index);
    bool owns(uint64_t cluster) const;
    std::string name() const { return file_.path().string(); }

    ImageFile& file_;
    unsigned cluster_bits_;
    uint64_t cluster_size_;
    TableCache cache_;
    uint64_t table_offset_ = 0;
    uint32_t table_clusters_ = 0;
    std::vector<uint64_t> table_;                  // refcount block offsets, host order
    std::unordered_set<uint64_t> block_clusters_;  // where the blocks are
    uint64_t free_hint_ = 0;                       // no free cluster below this one
    uint64_t end_cluster_ = 0;
    std::vector<uint64_t> freed_;
};

}  // namespace vireo
