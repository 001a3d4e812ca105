#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "block/disk_image.h"
#include "block/image_file.h"
#include "block/image_options.h"
#include "block/io_context.h"
#include "block/qcow2_refcounts.h"
#include "block/request_gate.h"
#include "block/table_cache.h"

namespace vireo {

// One internal snapshot, as `qemu-img snapshot -l` lists it.
struct SnapshotInfo {
    std::string id;
    std::string name;
    uint32_t date_sec = 0;  // seconds since the Epoch
    uint32_t date_nsec = 0;
    uint64_t vm_clock_ns = 0;  // guest run time when taken
    uint64_t vm_state_size = 0;
    uint64_t disk_size = 0;
};

// What check() found. Leaks (clusters counted but unused) waste space only;
// corruptions (clusters used but under-counted, bad table entries, wrong
// COPIED flags) endanger data.
struct CheckReport {
    uint64_t leaks = 0;
    uint64_t corruptions = 0;
    uint64_t leaks_fixed = 0;
    uint64_t corruptions_fixed = 0;
    // Defects no repair fixes (bad table entries); counted in corruptions too.
    uint64_t unrepairable = 0;
    // One line per defect found (the first 100).
    std::vector<std::string> messages;
    bool clean() const { return leaks == leaks_fixed && corruptions == corruptions_fixed; }
};

enum class CheckRepair {
    none,
    leaks,  // lower over-counted refcounts (what qemu-img check -r leaks does)
    all,    // also raise under-counted refcounts and fix COPIED flags
};

// A qcow2 image (version 3 read-write, version 2 read-only), with its backing
// chain, internal snapshots, zero clusters, discard and zlib-compressed
// clusters (read; a write to one allocates a normal cluster).
//
// Crash safety: refcounts reach the disk before the tables that use the
// clusters they count, new L2 tables before the L1 entries that point at them,
// and cleared L2 entries before the refcounts they drop; so after a crash at
// any instant the image has at most leaked clusters. flush() writes every
// cached table back in that order, then fdatasyncs.
//
// Asynchronous requests: reads and writes to allocated clusters go to the
// ring and complete later; a read's backing-file part becomes a request on
// the backing image; compressed clusters, allocating writes and the
// metadata a flush writes back are done at submit.
//
// Concurrency: reads and writes run concurrently. An allocating write reserves
// its new clusters under the metadata lock, writes their data without it, and
// then points the L2 entries at them; a write to a cluster being allocated
// waits for that. Discards, zeroing and snapshot operations are serialized
// with everything.
class Qcow2Image final : public DiskImage {
    struct Key {
        explicit Key() = default;
    };

public:
    // Use open(); the key keeps the constructor to it.
    Qcow2Image(Key, ImageFile file, const OpenOptions& options);

    // Opens the backing file `path` (resolved against this image's folder),
    // with `format` if the image names one.
    using BackingOpener = std::function<std::unique_ptr<DiskImage>(
        const std::filesystem::path& path, std::optional<ImageFormat> format)>;

    // `file` is open (and locked) already. Refuses, writing nothing, images
    // that are malformed, hostile or use features Vireo does not implement.
    // Opened for writing, the image is marked dirty until its clean close.
    static std::unique_ptr<Qcow2Image> open(ImageFile file, const OpenOptions& options,
                                            const BackingOpener& open_backing);
    // Writes a new, empty image into the empty `file`.
    static void create(ImageFile& file, uint64_t size, uint32_t cluster_size,
                       const std::string& backing_file, std::optional<ImageFormat> backing_format);

    // A clean close: writes everything back and clears the dirty bit.
    ~Qcow2Image() override;

    uint64_t size() const override { return size_; }
    bool read_only() const override { return read_only_; }
    void submit(IoContext& context, const DiskRequest& request, DiskCompletion done) override;

    const ImageFile& file() const { return file_; }
    uint32_t cluster_size() const { return static_cast<uint32_t>(cluster_size_); }
    uint32_t version() const { return version_; }
    // As stored in the header; empty without a backing file.
    const std::string& backing_file() const { return backing_name_; }
    std::optional<ImageFormat> backing_format() const { return backing_format_; }
    DiskImage* backing() const { return backing_.get(); }
    // The header's flags as found at open.
    bool was_dirty() const { return was_dirty_; }
    bool corrupt() const { return corrupt_; }

    std::vector<SnapshotInfo> snapshots() const;
    // Takes a snapshot of the disk as it is now; the id is the next free number.
    SnapshotInfo create_snapshot(const std::string& name);
    // The disk becomes what it was when the snapshot (by id, else by name) was taken.
    void revert_to_snapshot(const std::string& id_or_name);
    void delete_snapshot(const std::string& id_or_name);

    // Walks every table and compares the refcounts with the references found.
    CheckReport check(CheckRepair repair = CheckRepair::none);

private:
    struct Snapshot {
        uint64_t l1_offset = 0;
        uint32_t l1_size = 0;
        std::string id;
        std::string name;
        uint32_t date_sec = 0;
        uint32_t date_nsec = 0;
        uint64_t vm_clock_ns = 0;
        uint32_t vm_state_size32 = 0;
        std::vector<uint8_t> extra;  // kept as read, unknown fields included
        uint64_t vm_state_size() const;
        uint64_t disk_size(uint64_t fallback) const;
    };
    // Where a piece of a guest cluster's data comes from.
    enum class ClusterKind { unallocated, zero, normal, compressed };

    void load_header();
    void load_extensions(uint64_t end);
    void load_snapshots();
    void check_layout();
    std::vector<uint64_t> read_l1(uint64_t offset, uint32_t entries, const char* what) const;
    void check_region(const char* what, uint64_t offset, uint64_t length) const;
    std::string name() const { return file_.path().string(); }

    // Metadata access; meta_ held.
    uint64_t l2_entry(uint64_t guest_cluster);
    ClusterKind kind_of(uint64_t entry) const;
    uint64_t l2_table_offset(uint64_t l1_index) const;
    std::span<uint8_t> writable_l2(uint64_t l1_index);
    void set_l2_entry(uint64_t guest_cluster, uint64_t entry);
    uint64_t allocate_clusters(uint64_t count);
    bool is_metadata(uint64_t cluster) const;
    void free_later(uint64_t entry);
    void release_freed();
    void submit_read(IoContext& context, IoContext::Request& pending, uint64_t offset,
                     std::span<const iovec> buffers);
    void submit_backing_read(IoContext& context, IoContext::Request& pending, uint64_t offset,
                             std::span<const iovec> out, uint64_t length);
    void submit_write(IoContext& context, IoContext::Request& pending, uint64_t offset,
                      std::span<const iovec> buffers);
    void zero_range(uint64_t offset, uint64_t length, bool may_unmap);
    void discard_range(uint64_t offset, uint64_t length);
    void write_back_for_flush();
    void begin_write();
    [[noreturn]] void fail_corrupt(const std::string& defect);
    void write_back_metadata();
    void apply_pending_frees();
    void write_l1_entries();
    void write_header_u64(size_t field_offset, uint64_t value);
    void read_compressed(uint64_t entry, std::span<uint8_t> out);
    // Guest clusters [first_cluster, +count) that a write moves to new host
    // clusters [host, +count * cluster size): `data` (data_length bytes) lands
    // at guest byte `data_offset`; the rest of the first and last cluster keeps
    // what the old entries (`old`, one per cluster) read as.
    struct AllocationRun {
        uint64_t first_cluster = 0;
        uint64_t count = 0;
        uint64_t host = 0;
        uint64_t data_offset = 0;
        uint64_t data_length = 0;
        std::vector<iovec> data;
        std::vector<uint64_t> old;
    };
    struct InPlaceWrite {
        uint64_t host = 0;
        uint64_t length = 0;
        std::vector<iovec> buffers;
    };
    // A write planned with meta_ held: in-place pieces and new allocations
    // (reserved, and marked in allocating_), up to `end`; the rest waits.
    struct WritePlan {
        std::vector<InPlaceWrite> in_place;
        std::vector<AllocationRun> runs;
        uint64_t end = 0;
        std::vector<iovec> rest;
    };
    struct Allocation;
    WritePlan plan_write(uint64_t offset, std::span<const iovec> buffers);
    bool needs_allocation(uint64_t entry);
    bool reads_as_zero(uint64_t entry) const;
    void park_write(IoContext& context, IoContext::Request& pending, uint64_t offset,
                    std::vector<iovec> rest);
    void allocate_run(IoContext& context, IoContext::Request& pending, AllocationRun run);
    void submit_old_data_read(IoContext& context, IoContext::Request& reads, uint64_t guest_cluster,
                              uint64_t entry, uint64_t in_cluster, std::span<uint8_t> out);
    void write_allocation(IoContext& context, const std::shared_ptr<Allocation>& allocation,
                          uint64_t at);
    void finish_allocation(Allocation& allocation, const IoError* failure);
    void commit_allocation(const AllocationRun& run);
    void release_guest_clusters(const AllocationRun& run);
    void abandon_allocation(const AllocationRun& run);
    void write_locked(uint64_t offset, std::span<const uint8_t> data);
    void zero_clusters(uint64_t first, uint64_t count, bool unmap, bool discard);
    void check_io(uint64_t offset, uint64_t length, bool writing) const;

    // Snapshots and checks; meta_ held.
    void update_l1_refcounts(const std::vector<uint64_t>& l1, int64_t addend);
    void check_l1_refcounts(const std::vector<uint64_t>& l1);
    void fix_copied_flags();
    void write_snapshot_table(const std::vector<Snapshot>& snapshots);
    void replace_active_l1(const std::vector<uint64_t>& l1);
    size_t find_snapshot(const std::string& id_or_name) const;
    CheckReport check_locked(CheckRepair repair);
    void close();

    ImageFile file_;
    bool read_only_;
    uint32_t version_ = 3;
    unsigned cluster_bits_ = 16;
    uint64_t cluster_size_ = 1 << 16;
    uint64_t l2_entries_ = 0;
    uint64_t size_ = 0;
    uint64_t header_length_ = 0;
    uint64_t incompatible_ = 0;
    uint64_t autoclear_ = 0;
    uint64_t l1_offset_ = 0;
    std::string backing_name_;
    std::optional<ImageFormat> backing_format_;
    std::unique_ptr<DiskImage> backing_;
    bool was_dirty_ = false;
    bool corrupt_ = false;
    bool marked_dirty_ = false;

    // Guest reads, writes and flushes hold io_ shared until they complete
    // (the asynchronous ones from submit to their last part); discards,
    // zeroing and snapshot operations exclusive (they free clusters other
    // requests may be using).
    RequestGate io_;
    mutable std::mutex meta_;
    // Held while an allocating write reads the file's length and extends
    // it: past the length it read, no other thread has written yet.
    std::mutex file_growth_;
    std::vector<uint64_t> l1_;                // host order
    std::set<uint64_t> dirty_l1_;             // indices to write back
    std::unordered_set<uint64_t> active_l2_;  // clusters of the active L2 tables
    // Guest clusters whose new host cluster is being written outside meta_;
    // a write to one of them parks until an allocation completes, then
    // resumes on its own context.
    std::unordered_set<uint64_t> allocating_;
    struct ParkedWrite {
        IoContext* context;
        std::function<void()> resume;
    };
    std::vector<ParkedWrite> parked_writes_;
    std::unique_ptr<Qcow2Refcounts> refcounts_;
    std::unique_ptr<TableCache> l2_cache_;
    uint64_t l2_cache_bytes_;
    // Byte ranges no longer referenced once the cached tables reach the disk.
    std::vector<std::pair<uint64_t, uint64_t>> pending_frees_;
    std::vector<Snapshot> snapshots_;
    uint64_t snapshots_offset_ = 0;
    uint64_t snapshots_bytes_ = 0;
};

}  // namespace vireo
