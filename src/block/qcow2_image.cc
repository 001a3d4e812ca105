#include "block/qcow2_image.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "base/aligned_buffer.h"
#include "base/error.h"
#include "block/io_buffers.h"
#include "block/io_context.h"
#include "block/qcow2_format.h"

namespace vireo {

using qcow2::load;
using qcow2::store;

namespace {

// The most an allocating write extends the file by beyond what it needs:
// 16 of the default 64 KiB clusters.
constexpr uint64_t kMaxFileGrowthStep = 1 << 20;

uint64_t div_round_up(uint64_t value, uint64_t divisor) {
    return (value + divisor - 1) / divisor;
}

std::string feature_list(uint64_t bits,
                         const std::vector<std::pair<unsigned, std::string>>& names) {
    std::string out;
    for (unsigned bit = 0; bit < 64; ++bit) {
        if (!(bits & (1ULL << bit))) {
            continue;
        }
        std::string name = fmt::format("bit {}", bit);
        for (const auto& [named_bit, text] : names) {
            if (named_bit == bit) {
                name = fmt::format("{} (bit {})", text, bit);
            }
        }
        out += (out.empty() ? "" : ", ") + name;
    }
    return out;
}

}  // namespace

Qcow2Image::Qcow2Image(Key, ImageFile file, const OpenOptions& options)
    : file_(std::move(file)),
      read_only_(options.read_only),
      l2_cache_bytes_(options.l2_cache_bytes) {}

std::unique_ptr<Qcow2Image> Qcow2Image::open(ImageFile file, const OpenOptions& options,
                                             const BackingOpener& open_backing) {
    auto image = std::make_unique<Qcow2Image>(Key{}, std::move(file), options);
    image->load_header();
    image->check_layout();
    if (!image->backing_name_.empty()) {
        std::filesystem::path backing = image->backing_name_;
        if (backing.is_relative()) {
            backing = image->file_.path().parent_path() / backing;
        }
        image->backing_ = open_backing(backing, image->backing_format_);
    }
    if (image->was_dirty_ && !image->read_only_) {
        // Refcounts may be stale (a crash, or QEMU's lazy refcounts): rebuild
        // them, as QEMU does, unless the tables themselves are damaged.
        std::unique_lock io(image->io_);
        std::lock_guard meta(image->meta_);
        CheckReport report = image->check_locked(CheckRepair::none);
        if (report.unrepairable > 0) {
            fail("disk {}: corrupt: {}", image->name(),
                 report.messages.empty() ? "damaged tables" : report.messages.front());
        }
        image->marked_dirty_ = true;  // already set on disk
        if (!report.clean()) {
            image->check_locked(CheckRepair::all);
        }
        image->write_back_metadata();
        image->file_.sync();
        image->incompatible_ &= ~qcow2::kIncompatDirty;
        image->write_header_u64(offsetof(qcow2::Header, incompatible_features),
                                image->incompatible_);
        image->file_.sync();
        image->marked_dirty_ = false;
    }
    if (!image->read_only_ && !image->corrupt_) {
        // An image open for writing is in use: marked dirty now, so that the
        // first guest write does not wait for the header to reach the disk.
        std::lock_guard meta(image->meta_);
        image->begin_write();
    }
    return image;
}

void Qcow2Image::load_header() {
    uint64_t file_size = file_.size();
    if (file_size < qcow2::kHeaderV2Length) {
        fail("disk {}: truncated header: the file has {} bytes, a qcow2 header needs at least {}",
             name(), file_size, qcow2::kHeaderV2Length);
    }
    qcow2::Header h;
    file_.read(0, {reinterpret_cast<uint8_t*>(&h), sizeof(h)});
    if (h.magic.get() != qcow2::kMagic) {
        fail("disk {}: not a qcow2 image (bad magic {:#010x})", name(), h.magic.get());
    }
    version_ = h.version.get();
    if (version_ != 2 && version_ != 3) {
        fail("disk {}: qcow2 version {} is not supported (Vireo reads versions 2 and 3)", name(),
             version_);
    }
    cluster_bits_ = h.cluster_bits.get();
    if (cluster_bits_ < qcow2::kMinClusterBits || cluster_bits_ > qcow2::kMaxClusterBits) {
        fail("disk {}: cluster_bits {} out of range (allowed: {} to {}, 512 bytes to 2 MiB)",
             name(), h.cluster_bits.get(), qcow2::kMinClusterBits, qcow2::kMaxClusterBits);
    }
    cluster_size_ = uint64_t{1} << cluster_bits_;
    l2_entries_ = cluster_size_ / 8;
    uint32_t refcount_order = qcow2::kRefcountOrder;
    if (version_ == 3) {
        if (file_size < sizeof(qcow2::Header)) {
            fail("disk {}: truncated header: the file has {} bytes, a version 3 header needs {}",
                 name(), file_size, sizeof(qcow2::Header));
        }
        header_length_ = h.header_length.get();
        if (header_length_ < sizeof(qcow2::Header) || header_length_ % 8 != 0 ||
            header_length_ > cluster_size_) {
            fail(
                "disk {}: header_length {} is invalid (a multiple of 8 from {} to the cluster "
                "size)",
                name(), header_length_, sizeof(qcow2::Header));
        }
        if (file_size < header_length_) {
            fail("disk {}: truncated header: the file has {} bytes, the header {}", name(),
                 file_size, header_length_);
        }
        incompatible_ = h.incompatible_features.get();
        autoclear_ = h.autoclear_features.get();
        refcount_order = h.refcount_order.get();
    } else {
        header_length_ = qcow2::kHeaderV2Length;
    }

    uint64_t backing_offset = h.backing_file_offset.get();
    uint32_t backing_size = h.backing_file_size.get();
    load_extensions(backing_offset != 0 ? std::min(backing_offset, cluster_size_) : cluster_size_);
    if (backing_offset != 0) {
        if (backing_size > qcow2::kMaxBackingNameLength) {
            fail("disk {}: backing file name of {} bytes (at most {})", name(), backing_size,
                 qcow2::kMaxBackingNameLength);
        }
        if (backing_offset > cluster_size_ || backing_size > cluster_size_ - backing_offset ||
            backing_offset + backing_size > file_size) {
            fail("disk {}: backing file name at {:#x} ({} bytes) lies outside the header cluster",
                 name(), backing_offset, backing_size);
        }
        backing_name_.resize(backing_size);
        file_.read(backing_offset,
                   {reinterpret_cast<uint8_t*>(backing_name_.data()), backing_name_.size()});
        if (backing_name_.empty() || backing_name_.find('\0') != std::string::npos) {
            fail("disk {}: the backing file name is empty or holds a NUL byte", name());
        }
    }

    if (h.crypt_method.get() != 0) {
        fail("disk {}: encrypted qcow2 images (crypt_method {}) are not supported", name(),
             h.crypt_method.get());
    }
    if (incompatible_ & qcow2::kIncompatDataFile) {
        fail(
            "disk {}: uses an external data file (incompatible feature bit 2), which Vireo does "
            "not support",
            name());
    }
    if (incompatible_ & qcow2::kIncompatCompression) {
        fail(
            "disk {}: uses a compression type other than zlib (incompatible feature bit 3), "
            "which Vireo does not support",
            name());
    }
    if (incompatible_ & qcow2::kIncompatExtendedL2) {
        fail(
            "disk {}: uses extended L2 entries (subclusters, incompatible feature bit 4), which "
            "Vireo does not support",
            name());
    }
    if (uint64_t unknown = incompatible_ & ~qcow2::kIncompatKnown) {
        // Names come from the image's feature name table, when it has one.
        std::vector<std::pair<unsigned, std::string>> names;
        uint64_t end =
            backing_offset != 0 ? std::min(backing_offset, cluster_size_) : cluster_size_;
        for (uint64_t offset = header_length_; offset + 8 <= end;) {
            qcow2::HeaderExtension ext;
            file_.read(offset, {reinterpret_cast<uint8_t*>(&ext), sizeof(ext)});
            uint32_t length = ext.length.get();
            if (ext.type.get() == qcow2::kExtEnd || length > end - offset - 8) {
                break;
            }
            if (ext.type.get() == qcow2::kExtFeatureTable) {
                for (uint32_t i = 0; i + sizeof(qcow2::FeatureName) <= length;
                     i += sizeof(qcow2::FeatureName)) {
                    qcow2::FeatureName feature;
                    file_.read(offset + 8 + i,
                               {reinterpret_cast<uint8_t*>(&feature), sizeof(feature)});
                    if (feature.type == 0) {
                        names.emplace_back(feature.bit,
                                           std::string(feature.name, strnlen(feature.name, 46)));
                    }
                }
            }
            offset += 8 + div_round_up(length, 8) * 8;
        }
        fail("disk {}: unknown incompatible features: {}", name(), feature_list(unknown, names));
    }
    if (refcount_order != qcow2::kRefcountOrder) {
        fail(
            "disk {}: {}-bit refcounts (refcount_order {}) are not supported; Vireo supports "
            "16-bit refcounts (order 4), qemu-img's default",
            name(), refcount_order < 7 ? 1u << refcount_order : 0u, refcount_order);
    }
    corrupt_ = (incompatible_ & qcow2::kIncompatCorrupt) != 0;
    was_dirty_ = (incompatible_ & qcow2::kIncompatDirty) != 0;
    if (corrupt_ && !read_only_) {
        fail(
            "disk {}: the image is marked corrupt; open it read-only, or repair it with "
            "`qemu-img check -r all`",
            name());
    }
    if (version_ == 2 && !read_only_) {
        fail(
            "disk {}: qcow2 version 2 images open read-only in Vireo; upgrade it with "
            "`qemu-img amend -o compat=1.1`",
            name());
    }

    size_ = h.size.get();
    if (size_ > qcow2::kMaxVirtualSize) {
        fail("disk {}: absurd virtual size {} bytes (at most {})", name(), size_,
             qcow2::kMaxVirtualSize);
    }
    uint32_t l1_size = h.l1_size.get();
    uint64_t needed = div_round_up(size_, cluster_size_ * l2_entries_);
    if (uint64_t{l1_size} * 8 > qcow2::kMaxL1Bytes) {
        fail("disk {}: L1 table of {} entries (at most {})", name(), l1_size,
             qcow2::kMaxL1Bytes / 8);
    }
    if (l1_size < needed) {
        fail("disk {}: L1 table of {} entries is too small for the virtual size {} ({} needed)",
             name(), l1_size, size_, needed);
    }
    l1_offset_ = h.l1_table_offset.get();
    l1_ = read_l1(l1_offset_, l1_size, "L1 table");
    for (uint64_t i = 0; i < l1_.size(); ++i) {
        if (uint64_t offset = l1_[i] & qcow2::kOffsetMask) {
            active_l2_.insert(offset >> cluster_bits_);
        }
    }

    refcounts_ = std::make_unique<Qcow2Refcounts>(file_, cluster_bits_,
                                                  std::max<uint64_t>(l2_cache_bytes_ / 4, 1));
    refcounts_->load(h.refcount_table_offset.get(), h.refcount_table_clusters.get());
    l2_cache_ =
        std::make_unique<TableCache>(file_, cluster_size_, l2_cache_bytes_,
                                     [this](uint64_t offset, std::span<const uint8_t> table) {
                                         // Refcounts first: the clusters this table points at must
                                         // be counted.
                                         if (refcounts_->has_dirty()) {
                                             refcounts_->write_back();
                                             file_.sync();
                                         }
                                         file_.write(offset, table);
                                     });

    uint32_t nb_snapshots = h.nb_snapshots.get();
    snapshots_offset_ = h.snapshots_offset.get();
    if (nb_snapshots > qcow2::kMaxSnapshots) {
        fail("disk {}: {} snapshots (at most {})", name(), nb_snapshots, qcow2::kMaxSnapshots);
    }
    snapshots_.resize(nb_snapshots);
    load_snapshots();
}

void Qcow2Image::load_extensions(uint64_t end) {
    std::set<uint32_t> seen;
    for (uint64_t offset = header_length_;;) {
        if (offset + sizeof(qcow2::HeaderExtension) > end) {
            // QEMU also accepts a header area that ends without an end marker.
            return;
        }
        qcow2::HeaderExtension ext;
        file_.read(offset, {reinterpret_cast<uint8_t*>(&ext), sizeof(ext)});
        uint32_t type = ext.type.get();
        uint32_t length = ext.length.get();
        if (type == qcow2::kExtEnd) {
            return;
        }
        if (length > end - offset - sizeof(ext)) {
            fail("disk {}: header extension {:#x} at {} ({} bytes) overflows the header area",
                 name(), type, offset, length);
        }
        if (!seen.insert(type).second && type == qcow2::kExtBackingFormat) {
            fail("disk {}: two backing format header extensions", name());
        }
        if (type == qcow2::kExtBackingFormat) {
            std::string format(length, '\0');
            file_.read(offset + sizeof(ext), {reinterpret_cast<uint8_t*>(format.data()), length});
            if (format == "raw") {
                backing_format_ = ImageFormat::raw;
            } else if (format == "qcow2") {
                backing_format_ = ImageFormat::qcow2;
            } else {
                fail("disk {}: backing file format '{}' is not supported (raw or qcow2)", name(),
                     format);
            }
        }
        offset += sizeof(ext) + div_round_up(length, 8) * 8;
    }
}

uint64_t Qcow2Image::Snapshot::vm_state_size() const {
    return extra.size() >= 8 ? load<uint64_t>(extra.data(), 0) : vm_state_size32;
}

uint64_t Qcow2Image::Snapshot::disk_size(uint64_t fallback) const {
    return extra.size() >= 16 ? load<uint64_t>(extra.data(), 1) : fallback;
}

void Qcow2Image::load_snapshots() {
    uint64_t file_size = file_.size();
    if (snapshots_.empty()) {
        snapshots_bytes_ = 0;
        return;
    }
    if (snapshots_offset_ % cluster_size_ != 0) {
        fail("disk {}: snapshot table offset {:#x} is not aligned to a cluster", name(),
             snapshots_offset_);
    }
    uint64_t offset = snapshots_offset_;
    auto read_bytes = [&](std::span<uint8_t> out, const char* what) {
        if (offset > file_size || out.size() > file_size - offset ||
            offset + out.size() - snapshots_offset_ > qcow2::kMaxSnapshotTableBytes) {
            fail("disk {}: snapshot table {} at {:#x} lies beyond the end of the file", name(),
                 what, offset);
        }
        file_.read(offset, out);
        offset += out.size();
    };
    for (size_t i = 0; i < snapshots_.size(); ++i) {
        Snapshot& s = snapshots_[i];
        qcow2::SnapshotHeader h;
        read_bytes({reinterpret_cast<uint8_t*>(&h), sizeof(h)}, "entry");
        uint32_t extra_size = h.extra_data_size.get();
        if (extra_size > qcow2::kMaxSnapshotExtraData) {
            fail("disk {}: snapshot {} has {} bytes of extra data (at most {})", name(), i,
                 extra_size, qcow2::kMaxSnapshotExtraData);
        }
        s.extra.resize(extra_size);
        read_bytes(s.extra, "extra data");
        s.id.resize(h.id_str_size.get());
        read_bytes({reinterpret_cast<uint8_t*>(s.id.data()), s.id.size()}, "id");
        s.name.resize(h.name_size.get());
        read_bytes({reinterpret_cast<uint8_t*>(s.name.data()), s.name.size()}, "name");
        offset = snapshots_offset_ + div_round_up(offset - snapshots_offset_, 8) * 8;
        s.l1_offset = h.l1_table_offset.get();
        s.l1_size = h.l1_size.get();
        s.date_sec = h.date_sec.get();
        s.date_nsec = h.date_nsec.get();
        s.vm_clock_ns = h.vm_clock_nsec.get();
        s.vm_state_size32 = h.vm_state_size.get();
        if (s.l1_offset % cluster_size_ != 0) {
            fail("disk {}: snapshot '{}' L1 table at {:#x} is not aligned to a cluster", name(),
                 s.id, s.l1_offset);
        }
        if (uint64_t{s.l1_size} * 8 > qcow2::kMaxL1Bytes) {
            fail("disk {}: snapshot '{}' L1 table of {} entries (at most {})", name(), s.id,
                 s.l1_size, qcow2::kMaxL1Bytes / 8);
        }
        check_region("snapshot L1 table", s.l1_offset, uint64_t{s.l1_size} * 8);
        if (s.disk_size(size_) > qcow2::kMaxVirtualSize) {
            fail("disk {}: snapshot '{}' has an absurd disk size {}", name(), s.id,
                 s.disk_size(size_));
        }
    }
    snapshots_bytes_ = offset - snapshots_offset_;
}

void Qcow2Image::check_region(const char* what, uint64_t offset, uint64_t length) const {
    uint64_t file_size = file_.size();
    if (offset > file_size || length > file_size - offset) {
        fail("disk {}: {} at {:#x} ({} bytes) extends beyond the end of the file ({} bytes)",
             name(), what, offset, length, file_size);
    }
}

std::vector<uint64_t> Qcow2Image::read_l1(uint64_t offset, uint32_t entries,
                                          const char* what) const {
    if (offset % cluster_size_ != 0) {
        fail("disk {}: {} at {:#x} is not aligned to a cluster", name(), what, offset);
    }
    check_region(what, offset, uint64_t{entries} * 8);
    std::vector<uint8_t> raw(uint64_t{entries} * 8);
    file_.read(offset, raw);
    std::vector<uint64_t> table(entries);
    for (size_t i = 0; i < entries; ++i) {
        table[i] = load<uint64_t>(raw.data(), i);
    }
    return table;
}

void Qcow2Image::check_layout() {
    // The fixed metadata, in whole clusters; no two may share a cluster.
    struct Region {
        std::string what;
        uint64_t first;
        uint64_t end;
    };
    std::vector<Region> regions;
    auto add = [&](std::string what, uint64_t offset, uint64_t length) {
        if (length == 0) {
            return;
        }
        regions.push_back({std::move(what), offset >> cluster_bits_,
                           div_round_up(offset + length, cluster_size_)});
    };
    add("the header", 0, cluster_size_);
    add("the L1 table", l1_offset_, l1_.size() * 8);
    add("the refcount table", refcounts_->table_offset(),
        uint64_t{refcounts_->table_clusters()} * cluster_size_);
    add("the snapshot table", snapshots_offset_, snapshots_bytes_);
    for (const Snapshot& s : snapshots_) {
        add(fmt::format("snapshot '{}' L1 table", s.id), s.l1_offset, uint64_t{s.l1_size} * 8);
    }
    for (size_t i = 0; i < refcounts_->table().size(); ++i) {
        if (uint64_t offset = refcounts_->table()[i]) {
            add(fmt::format("refcount block {}", i), offset, cluster_size_);
        }
    }
    uint64_t file_size = file_.size();
    for (size_t i = 0; i < l1_.size(); ++i) {
        uint64_t offset = l1_[i] & qcow2::kOffsetMask;
        if (l1_[i] & qcow2::kL1Reserved) {
            fail("disk {}: L1 entry {} ({:#x}) has reserved bits set", name(), i, l1_[i]);
        }
        if (offset == 0) {
            continue;
        }
        if (offset % cluster_size_ != 0) {
            fail("disk {}: L2 table {} at {:#x} is not aligned to a cluster", name(), i, offset);
        }
        if (offset >= file_size || cluster_size_ > file_size - offset) {
            fail("disk {}: L2 table {} at {:#x} lies beyond the end of the file ({} bytes)", name(),
                 i, offset, file_size);
        }
        add(fmt::format("L2 table {}", i), offset, cluster_size_);
    }
    std::sort(regions.begin(), regions.end(),
              [](const Region& a, const Region& b) { return a.first < b.first; });
    for (size_t i = 1; i < regions.size(); ++i) {
        if (regions[i].first < regions[i - 1].end) {
            fail("disk {}: overlapping metadata: {} and {} share the cluster at {:#x}", name(),
                 regions[i - 1].what, regions[i].what, regions[i].first << cluster_bits_);
        }
    }
}

// ---- lookups ----

Qcow2Image::ClusterKind Qcow2Image::kind_of(uint64_t entry) const {
    if (entry & qcow2::kCompressed) {
        return ClusterKind::compressed;
    }
    if (version_ >= 3 && (entry & qcow2::kZero)) {
        return ClusterKind::zero;
    }
    return (entry & qcow2::kOffsetMask) == 0 ? ClusterKind::unallocated : ClusterKind::normal;
}

uint64_t Qcow2Image::l2_table_offset(uint64_t l1_index) const {
    return l1_index < l1_.size() ? l1_[l1_index] & qcow2::kOffsetMask : 0;
}

uint64_t Qcow2Image::l2_entry(uint64_t guest_cluster) {
    uint64_t table = l2_table_offset(guest_cluster / l2_entries_);
    if (table == 0) {
        return 0;
    }
    return load<uint64_t>(l2_cache_->get(table).data(), guest_cluster % l2_entries_);
}

bool Qcow2Image::is_metadata(uint64_t cluster) const {
    if (cluster == 0 || active_l2_.count(cluster) != 0) {
        return true;
    }
    auto within = [&](uint64_t offset, uint64_t length) {
        uint64_t first = offset >> cluster_bits_;
        return length > 0 && cluster >= first &&
               cluster < div_round_up(offset + length, cluster_size_);
    };
    if (within(l1_offset_, l1_.size() * 8) || within(snapshots_offset_, snapshots_bytes_)) {
        return true;
    }
    for (const Snapshot& s : snapshots_) {
        if (within(s.l1_offset, uint64_t{s.l1_size} * 8)) {
            return true;
        }
    }
    return false;
}

uint64_t Qcow2Image::allocate_clusters(uint64_t count) {
    try {
        return refcounts_->allocate(count, [this](uint64_t c) { return is_metadata(c); });
    } catch (const IoError&) {
        throw;
    } catch (const Error& e) {
        fail_corrupt(e.what());
    }
}

void Qcow2Image::fail_corrupt(const std::string& defect) {
    if (!corrupt_ && !read_only_) {
        corrupt_ = true;
        try {
            incompatible_ |= qcow2::kIncompatCorrupt;
            write_header_u64(offsetof(qcow2::Header, incompatible_features), incompatible_);
            file_.sync();
        } catch (const Error& e) {
            spdlog::error("disk {}: cannot mark the image corrupt: {}", name(), e.what());
        }
    }
    corrupt_ = true;
    throw IoError(fmt::format("disk {}: corrupt image, now refusing writes: {}", name(), defect));
}

void Qcow2Image::write_header_u64(size_t field_offset, uint64_t value) {
    qcow2::Be64 be;
    be.set(value);
    file_.write(field_offset, {be.bytes, sizeof(be)});
}

// ---- reads ----

void Qcow2Image::check_io(uint64_t offset, uint64_t length, bool writing) const {
    if (offset > size_ || length > size_ - offset) {
        throw IoError(fmt::format("disk {}: range {:#x}+{:#x} lies beyond the disk's {} bytes",
                                  name(), offset, length, size_));
    }
    if (writing && read_only_) {
        throw IoError(fmt::format("disk {}: opened read-only", name()));
    }
    if (writing && corrupt_) {
        throw IoError(fmt::format("disk {}: the image is corrupt; writes are refused", name()));
    }
}

void Qcow2Image::read_compressed(uint64_t entry, std::span<uint8_t> out) {
    qcow2::CompressedDescriptor desc = qcow2::decode_compressed(entry, cluster_bits_);
    std::vector<uint8_t> in(desc.length);
    file_.read(desc.offset, in);
    z_stream stream{};
    // Raw deflate, as QEMU writes it (no zlib header); 15 accepts any window.
    if (inflateInit2(&stream, -15) != Z_OK) {
        throw IoError(fmt::format("disk {}: zlib initialisation failed", name()));
    }
    stream.next_in = in.data();
    stream.avail_in = static_cast<uInt>(in.size());
    stream.next_out = out.data();
    stream.avail_out = static_cast<uInt>(out.size());
    int rc = inflate(&stream, Z_FINISH);
    inflateEnd(&stream);
    if (stream.avail_out != 0 || (rc != Z_STREAM_END && rc != Z_BUF_ERROR && rc != Z_OK)) {
        throw IoError(
            fmt::format("disk {}: compressed cluster at {:#x} does not decompress to "
                        "a cluster (zlib: {})",
                        name(), desc.offset, rc));
    }
}

void Qcow2Image::submit(IoContext& context, const DiskRequest& request, DiskCompletion done) {
    IoContext::Request& pending = context.begin(std::move(done));
    // Reads, writes and flushes hold io_ shared until their last part is done;
    // discard and zeroing take it exclusive themselves.
    using Type = DiskRequest::Type;
    bool gated = request.type == Type::read || request.type == Type::write ||
                 (request.type == Type::flush && !read_only_);
    if (gated) {
        io_.lock_shared();
    }
    try {
        switch (request.type) {
            case Type::read:
                check_io(request.offset, total_length(request.buffers), false);
                submit_read(context, pending, request.offset, request.buffers);
                break;
            case Type::write:
                check_io(request.offset, total_length(request.buffers), true);
                submit_write(context, pending, request.offset, request.buffers);
                break;
            case Type::flush:
                if (gated) {
                    write_back_for_flush();
                    context.sync(pending, file_);
                }
                break;
            case Type::write_zeroes:
                zero_range(request.offset, request.length, request.may_unmap);
                break;
            case Type::discard:
                discard_range(request.offset, request.length);
                break;
        }
    } catch (const IoError& error) {
        context.fail(pending, error);
    } catch (const Error& error) {
        context.fail(pending, IoError(error.what()));
    }
    context.end(pending, gated ? std::function<void()>([this] { io_.unlock_shared(); })
                               : std::function<void()>());
}

// Host data goes to the ring, merged where host clusters follow each other;
// zero clusters are filled here; the backing file gets requests of its own
// (consecutive clusters as one); compressed clusters are inflated here, once
// meta_ is free.
void Qcow2Image::submit_read(IoContext& context, IoContext::Request& pending, uint64_t offset,
                             std::span<const iovec> buffers) {
    struct Deferred {
        ClusterKind kind;
        uint64_t entry;
        uint64_t guest_offset;
        std::vector<iovec> out;
        uint64_t length;
    };
    std::vector<Deferred> deferred;
    uint64_t length = total_length(buffers);
    BufferCursor cursor(buffers);
    uint64_t host_start = 0;
    uint64_t host_length = 0;
    std::vector<iovec> host_buffers;
    auto send_host = [&] {
        if (host_length > 0) {
            context.read(pending, file_, host_start, host_buffers);
            host_buffers.clear();
            host_length = 0;
        }
    };
    {
        std::lock_guard meta(meta_);
        for (uint64_t pos = 0; pos < length;) {
            uint64_t guest = offset + pos;
            uint64_t in_cluster = guest & (cluster_size_ - 1);
            uint64_t n = std::min<uint64_t>(cluster_size_ - in_cluster, length - pos);
            uint64_t entry = l2_entry(guest >> cluster_bits_);
            ClusterKind kind = kind_of(entry);
            pos += n;
            if (kind == ClusterKind::normal) {
                uint64_t at = (entry & qcow2::kOffsetMask) + in_cluster;
                if (host_length > 0 && host_start + host_length != at) {
                    send_host();
                }
                if (host_length == 0) {
                    host_start = at;
                }
                cursor.take(n, host_buffers);
                host_length += n;
                continue;
            }
            send_host();
            if (kind == ClusterKind::zero || (kind == ClusterKind::unallocated && !backing_)) {
                fill_zeroes(cursor.take(n));
            } else if (kind == ClusterKind::unallocated && !deferred.empty() &&
                       deferred.back().kind == ClusterKind::unallocated &&
                       deferred.back().guest_offset + deferred.back().length == guest) {
                cursor.take(n, deferred.back().out);
                deferred.back().length += n;
            } else {
                deferred.push_back({kind, entry, guest, cursor.take(n), n});
            }
        }
        send_host();
    }
    std::vector<uint8_t> cluster;
    for (Deferred& d : deferred) {
        if (d.kind == ClusterKind::unallocated) {
            submit_backing_read(context, pending, d.guest_offset, d.out, d.length);
        } else {
            cluster.resize(cluster_size_);
            read_compressed(d.entry, cluster);
            uint64_t in_cluster = d.guest_offset & (cluster_size_ - 1);
            copy_into(d.out, {cluster.data() + in_cluster, d.length});
        }
    }
}

// What lies past the backing file's end reads as zeroes.
void Qcow2Image::submit_backing_read(IoContext& context, IoContext::Request& pending,
                                     uint64_t offset, std::span<const iovec> out, uint64_t length) {
    uint64_t available = 0;
    if (backing_ && offset < backing_->size()) {
        available = std::min<uint64_t>(length, backing_->size() - offset);
    }
    BufferCursor cursor(out);
    if (available > 0) {
        std::vector<iovec> part = cursor.take(available);
        backing_->submit(context, DiskRequest::read(offset, part), context.part(pending));
    }
    fill_zeroes(cursor.take(length - available));
}

// ---- writes ----

void Qcow2Image::begin_write() {
    if (read_only_) {
        throw IoError(fmt::format("disk {}: opened read-only", name()));
    }
    if (corrupt_) {
        throw IoError(fmt::format("disk {}: the image is corrupt; writes are refused", name()));
    }
    if (marked_dirty_) {
        return;
    }
    // Until the clean close clears it, the dirty bit tells QEMU (and us) to
    // rebuild refcounts after a crash. Unknown autoclear features are dropped
    // before the first change, as the specification requires.
    incompatible_ |= qcow2::kIncompatDirty;
    write_header_u64(offsetof(qcow2::Header, incompatible_features), incompatible_);
    if (autoclear_ != 0) {
        autoclear_ = 0;
        write_header_u64(offsetof(qcow2::Header, autoclear_features), 0);
    }
    file_.sync();
    marked_dirty_ = true;
}

std::span<uint8_t> Qcow2Image::writable_l2(uint64_t l1_index) {
    uint64_t l1_entry = l1_[l1_index];
    uint64_t old = l1_entry & qcow2::kOffsetMask;
    if (old != 0 && (l1_entry & qcow2::kCopied)) {
        return l2_cache_->get(old);
    }
    uint64_t fresh = allocate_clusters(1);
    if (old == 0) {
        l2_cache_->create(fresh);
    } else {
        // Shared with a snapshot: copy it; the entries keep their references.
        std::span<uint8_t> shared = l2_cache_->get(old);
        std::vector<uint8_t> copy(shared.begin(), shared.end());
        l2_cache_->create(fresh, copy);
        pending_frees_.emplace_back(old, cluster_size_);
        active_l2_.erase(old >> cluster_bits_);
    }
    active_l2_.insert(fresh >> cluster_bits_);
    l1_[l1_index] = fresh | qcow2::kCopied;
    dirty_l1_.insert(l1_index);
    return l2_cache_->get(fresh);
}

void Qcow2Image::set_l2_entry(uint64_t guest_cluster, uint64_t entry) {
    uint64_t l1_index = guest_cluster / l2_entries_;
    std::span<uint8_t> table = writable_l2(l1_index);
    store<uint64_t>(table.data(), guest_cluster % l2_entries_, entry);
    l2_cache_->mark_dirty(l1_[l1_index] & qcow2::kOffsetMask);
}

void Qcow2Image::free_later(uint64_t entry) {
    switch (kind_of(entry)) {
        case ClusterKind::normal:
        case ClusterKind::zero:
            if (uint64_t offset = entry & qcow2::kOffsetMask) {
                pending_frees_.emplace_back(offset, cluster_size_);
            }
            break;
        case ClusterKind::compressed: {
            qcow2::CompressedDescriptor desc = qcow2::decode_compressed(entry, cluster_bits_);
            pending_frees_.emplace_back(desc.offset, desc.length);
            break;
        }
        case ClusterKind::unallocated:
            break;
    }
}

bool Qcow2Image::needs_allocation(uint64_t entry) {
    if (kind_of(entry) != ClusterKind::normal || !(entry & qcow2::kCopied)) {
        return true;
    }
    uint64_t host = entry & qcow2::kOffsetMask;
    if (is_metadata(host >> cluster_bits_) || refcounts_->get(host >> cluster_bits_) != 1) {
        fail_corrupt(
            fmt::format("a guest cluster maps to {:#x}, which is metadata or not "
                        "counted once",
                        host));
    }
    return false;
}

// Plans the write of `buffers` at `offset` with meta_ held: pieces in
// clusters this image alone maps go in place; the others get new clusters,
// reserved here and marked in allocating_. Planning stops at a cluster another
// write is allocating, leaving the rest in plan.rest.
Qcow2Image::WritePlan Qcow2Image::plan_write(uint64_t offset, std::span<const iovec> buffers) {
    WritePlan plan;
    uint64_t length = total_length(buffers);
    BufferCursor cursor(buffers);
    try {
        while (plan.end < length) {
            uint64_t guest = offset + plan.end;
            uint64_t cluster = guest >> cluster_bits_;
            uint64_t in_cluster = guest & (cluster_size_ - 1);
            uint64_t n = std::min<uint64_t>(cluster_size_ - in_cluster, length - plan.end);
            if (allocating_.contains(cluster)) {
                plan.rest = cursor.take(length - plan.end);
                break;
            }
            uint64_t entry = l2_entry(cluster);
            if (!needs_allocation(entry)) {
                uint64_t at = (entry & qcow2::kOffsetMask) + in_cluster;
                auto& in_place = plan.in_place;
                if (in_place.empty() || in_place.back().host + in_place.back().length != at) {
                    in_place.push_back({at, 0, {}});
                }
                in_place.back().length += n;
                cursor.take(n, in_place.back().buffers);
            } else {
                // The L2 table first, so it lies before the data it maps, as QEMU lays it out.
                writable_l2(cluster / l2_entries_);
                auto& runs = plan.runs;
                if (runs.empty() || runs.back().first_cluster + runs.back().count != cluster ||
                    runs.back().count == refcounts_->max_allocation()) {
                    runs.push_back({cluster, 0, 0, guest, 0, {}, {}});
                }
                AllocationRun& run = runs.back();
                ++run.count;
                run.data_length += n;
                run.old.push_back(entry);
                cursor.take(n, run.data);
                allocating_.insert(cluster);
            }
            plan.end += n;
        }
        for (AllocationRun& run : plan.runs) {
            run.host = allocate_clusters(run.count);
        }
    } catch (...) {
        for (const AllocationRun& run : plan.runs) {
            abandon_allocation(run);
        }
        throw;
    }
    return plan;
}

bool Qcow2Image::reads_as_zero(uint64_t entry) const {
    ClusterKind kind = kind_of(entry);
    return kind == ClusterKind::zero || (kind == ClusterKind::unallocated && !backing_);
}

// Pieces in clusters the image maps to this disk alone go to the ring in
// place; the others are allocated (allocate_run). What lies in a cluster
// another write is allocating waits, parked, until an allocation completes.
void Qcow2Image::submit_write(IoContext& context, IoContext::Request& pending, uint64_t offset,
                              std::span<const iovec> buffers) {
    WritePlan plan;
    {
        std::lock_guard meta(meta_);
        begin_write();
        plan = plan_write(offset, buffers);
        if (!plan.rest.empty()) {
            park_write(context, pending, offset + plan.end, std::move(plan.rest));
        }
    }
    for (const InPlaceWrite& piece : plan.in_place) {
        context.write(pending, file_, piece.host, piece.buffers);
    }
    for (AllocationRun& run : plan.runs) {
        allocate_run(context, pending, std::move(run));
    }
}

// meta_ held, so the allocation this write waits for cannot complete unseen.
void Qcow2Image::park_write(IoContext& context, IoContext::Request& pending, uint64_t offset,
                            std::vector<iovec> rest) {
    context.expect_post();
    DiskCompletion resumed = context.part(pending);
    auto resume = [this, &context, &pending, offset, rest = std::move(rest), resumed] {
        std::optional<IoError> failure;
        try {
            submit_write(context, pending, offset, rest);
        } catch (const IoError& error) {
            failure = error;
        } catch (const Error& error) {
            failure = IoError(error.what());
        }
        resumed(failure ? &*failure : nullptr);
    };
    parked_writes_.push_back({&context, std::move(resume)});
}

// A run's new clusters get its data and, around it in the first and last
// cluster, what the old entries read as: zeroes by one fallocate when both
// ends read as zeroes, otherwise the old contents (backing file, compressed,
// shared with a snapshot), read first and written in the same write as the
// data. The clusters are mapped only once that write is done, so a crash
// before leaves them unreferenced, never mapped to stale data.
struct Qcow2Image::Allocation {
    AllocationRun run;
    DiskCompletion finish;
    std::optional<AlignedBuffer> head;  // the first cluster before the data
    std::optional<AlignedBuffer> tail;  // the last cluster after the data
};

void Qcow2Image::allocate_run(IoContext& context, IoContext::Request& pending, AllocationRun run) {
    uint64_t run_bytes = run.count * cluster_size_;
    uint64_t head = run.data_offset - run.first_cluster * cluster_size_;
    uint64_t tail_start = head + run.data_length;
    bool copy_head = head > 0 && !reads_as_zero(run.old.front());
    bool copy_tail = tail_start < run_bytes && !reads_as_zero(run.old.back());
    auto allocation = std::make_shared<Allocation>(
        Allocation{std::move(run), context.part(pending), std::nullopt, std::nullopt});
    const AllocationRun& planned = allocation->run;
    // One fallocate zeroes what lies around the data when it must read as
    // zeroes, and makes the file longer first when the run lies past its
    // end: ext4 runs a direct write that extends the file synchronously, one
    // at a time (a queue of copy-on-writes ran at a quarter of the speed).
    // The file grows ahead of its clusters, by a quarter of its length up to
    // 1 MiB, so that a stream of new clusters pays one fallocate (which
    // blocks the I/O thread) per step rather than one per run, and a small
    // linked clone stays small; clusters past the last one in use are free
    // (refcount 0), whatever the file's length. Only what lies past the
    // length read under file_growth_ is zeroed besides the run itself: a run
    // of another thread there has not been written yet.
    bool zero_ends = !copy_head && !copy_tail && (head > 0 || tail_start < run_bytes);
    try {
        uint64_t run_end = planned.host + run_bytes;
        std::unique_lock growth(file_growth_);
        uint64_t file_end = file_.size();
        if (run_end > file_end) {
            uint64_t ahead = file_end + std::min(file_end / 4, kMaxFileGrowthStep);
            uint64_t grown_end =
                std::max(run_end, div_round_up(ahead, cluster_size_) * cluster_size_);
            uint64_t from = zero_ends ? planned.host : std::max(planned.host, file_end);
            file_.zero_range(from, grown_end - from);
        } else if (zero_ends) {
            growth.unlock();
            file_.zero_range(planned.host, run_bytes);
        }
    } catch (const Error& error) {
        IoError failure(error.what());
        finish_allocation(*allocation, &failure);
        return;
    }
    if (!copy_head && !copy_tail) {
        write_allocation(context, allocation, planned.host + head);
        return;
    }
    IoContext::Request& reads = context.begin([this, &context, allocation](const IoError* failure) {
        if (failure) {
            finish_allocation(*allocation, failure);
        } else {
            write_allocation(context, allocation, allocation->run.host);
        }
    });
    try {
        if (head > 0) {
            allocation->head.emplace(head);  // zeroes unless copied
            if (copy_head) {
                submit_old_data_read(context, reads, planned.first_cluster, planned.old.front(), 0,
                                     allocation->head->span());
            }
        }
        if (tail_start < run_bytes) {
            allocation->tail.emplace(run_bytes - tail_start);
            if (copy_tail) {
                uint64_t in_last = tail_start - (planned.count - 1) * cluster_size_;
                submit_old_data_read(context, reads, planned.first_cluster + planned.count - 1,
                                     planned.old.back(), in_last, allocation->tail->span());
            }
        }
    } catch (const Error& error) {
        context.fail(reads, IoError(error.what()));
    }
    context.end(reads);
}

// Runs without meta_: the run's guest clusters are ours (allocating_), and
// their old contents cannot be freed while the request holds io_.
void Qcow2Image::submit_old_data_read(IoContext& context, IoContext::Request& reads,
                                      uint64_t guest_cluster, uint64_t entry, uint64_t in_cluster,
                                      std::span<uint8_t> out) {
    iovec buffer{out.data(), out.size()};
    switch (kind_of(entry)) {
        case ClusterKind::normal:
            context.read(reads, file_, (entry & qcow2::kOffsetMask) + in_cluster, {&buffer, 1});
            break;
        case ClusterKind::unallocated:
            submit_backing_read(context, reads, guest_cluster * cluster_size_ + in_cluster,
                                {&buffer, 1}, out.size());
            break;
        case ClusterKind::zero:
            break;  // the buffer holds zeroes
        case ClusterKind::compressed: {
            std::vector<uint8_t> cluster(cluster_size_);
            read_compressed(entry, cluster);
            std::copy_n(cluster.begin() + static_cast<ptrdiff_t>(in_cluster), out.size(),
                        out.begin());
            break;
        }
    }
}

void Qcow2Image::write_allocation(IoContext& context, const std::shared_ptr<Allocation>& allocation,
                                  uint64_t at) {
    std::vector<iovec> buffers;
    if (allocation->head) {
        buffers.push_back({allocation->head->data(), allocation->head->size()});
    }
    buffers.insert(buffers.end(), allocation->run.data.begin(), allocation->run.data.end());
    if (allocation->tail) {
        buffers.push_back({allocation->tail->data(), allocation->tail->size()});
    }
    IoContext::Request& write = context.begin(
        [this, allocation](const IoError* failure) { finish_allocation(*allocation, failure); });
    context.write(write, file_, at, buffers);
    context.end(write);
}

// Maps the run's clusters once its data is written (or gives them back if it
// failed), and resumes the writes that waited for a cluster in allocating_.
void Qcow2Image::finish_allocation(Allocation& allocation, const IoError* failure) {
    std::optional<IoError> error;
    if (failure) {
        error = *failure;
    }
    std::vector<ParkedWrite> parked;
    {
        std::lock_guard meta(meta_);
        if (error) {
            abandon_allocation(allocation.run);
        } else {
            release_guest_clusters(allocation.run);
            try {
                commit_allocation(allocation.run);
            } catch (const IoError& commit_error) {
                error = commit_error;
            } catch (const Error& commit_error) {
                error = IoError(commit_error.what());
            }
        }
        parked.swap(parked_writes_);
    }
    for (ParkedWrite& write : parked) {
        write.context->post(std::move(write.resume));
    }
    allocation.finish(error ? &*error : nullptr);
}

// The caller has released the run's guest clusters; if a table cannot be
// read here, the clusters not yet mapped leak, which check --repair reclaims.
void Qcow2Image::commit_allocation(const AllocationRun& run) {
    for (uint64_t k = 0; k < run.count; ++k) {
        set_l2_entry(run.first_cluster + k, (run.host + k * cluster_size_) | qcow2::kCopied);
        free_later(run.old[k]);
    }
}

void Qcow2Image::release_guest_clusters(const AllocationRun& run) {
    for (uint64_t k = 0; k < run.count; ++k) {
        allocating_.erase(run.first_cluster + k);
    }
}

// The data never became visible: the guest clusters keep their old entries and
// the reserved clusters (if any yet) are freed at the next write-back.
void Qcow2Image::abandon_allocation(const AllocationRun& run) {
    if (run.host != 0) {
        pending_frees_.emplace_back(run.host, run.count * cluster_size_);
    }
    release_guest_clusters(run);
}

// For zeroing within a cluster, with io_ held exclusive: no other write can
// be allocating, so nothing parks.
void Qcow2Image::write_locked(uint64_t offset, std::span<const uint8_t> data) {
    iovec buffer{const_cast<uint8_t*>(data.data()), data.size()};
    IoContext::run_and_wait([&](IoContext& context, IoContext::Request& pending) {
        submit_write(context, pending, offset, {&buffer, 1});
    });
}

void Qcow2Image::zero_clusters(uint64_t first, uint64_t count, bool unmap, bool discard) {
    for (uint64_t c = first; c < first + count;) {
        uint64_t l1_index = c / l2_entries_;
        if (l2_table_offset(l1_index) == 0 && !backing_) {
            c = (l1_index + 1) * l2_entries_;  // a whole unallocated table reads as zeroes
            continue;
        }
        uint64_t entry = l2_entry(c);
        ClusterKind kind = kind_of(entry);
        uint64_t wanted;
        if (discard && !backing_) {
            wanted = 0;
        } else if (!unmap && (entry & qcow2::kCopied) &&
                   (kind == ClusterKind::normal || kind == ClusterKind::zero)) {
            wanted = entry | qcow2::kZero;  // keeps its cluster, reads as zeroes
        } else {
            wanted = qcow2::kZero;
        }
        bool holds_space = kind == ClusterKind::compressed || (entry & qcow2::kOffsetMask) != 0;
        bool reads_zero =
            kind == ClusterKind::zero || (kind == ClusterKind::unallocated && !backing_);
        if (entry != wanted && !(reads_zero && !holds_space)) {
            set_l2_entry(c, wanted);
            if ((wanted & qcow2::kOffsetMask) == 0) {
                free_later(entry);
            }
        }
        ++c;
    }
}

void Qcow2Image::zero_range(uint64_t offset, uint64_t length, bool may_unmap) {
    check_io(offset, length, true);
    std::unique_lock io(io_);
    uint64_t end = offset + length;
    uint64_t first = div_round_up(offset, cluster_size_);
    uint64_t last = (end == size_ ? div_round_up(end, cluster_size_) : end / cluster_size_);
    if (first >= last) {
        std::vector<uint8_t> zeroes(length);
        write_locked(offset, zeroes);
        return;
    }
    uint64_t head = std::min(first * cluster_size_, end) - offset;
    uint64_t tail_start = std::max(last * cluster_size_, offset);
    std::vector<uint8_t> zeroes(std::max<uint64_t>(head, end > tail_start ? end - tail_start : 0));
    if (head > 0) {
        write_locked(offset, {zeroes.data(), head});
    }
    if (end > tail_start) {
        write_locked(tail_start, {zeroes.data(), end - tail_start});
    }
    std::lock_guard meta(meta_);
    begin_write();
    zero_clusters(first, last - first, may_unmap, false);
}

void Qcow2Image::discard_range(uint64_t offset, uint64_t length) {
    check_io(offset, length, true);
    std::unique_lock io(io_);
    uint64_t end = offset + length;
    uint64_t first = div_round_up(offset, cluster_size_);
    uint64_t last = (end == size_ ? div_round_up(end, cluster_size_) : end / cluster_size_);
    if (first >= last) {
        return;  // partial clusters keep their data, which discard allows
    }
    std::lock_guard meta(meta_);
    begin_write();
    zero_clusters(first, last - first, true, true);
}

// ---- write-back ----

void Qcow2Image::write_l1_entries() {
    if (dirty_l1_.empty()) {
        return;
    }
    uint64_t first = *dirty_l1_.begin();
    uint64_t last = *dirty_l1_.rbegin();
    std::vector<uint8_t> raw((last - first + 1) * 8);
    for (uint64_t i = first; i <= last; ++i) {
        store<uint64_t>(raw.data(), i - first, l1_[i]);
    }
    file_.write(l1_offset_ + first * 8, raw);
    dirty_l1_.clear();
}

void Qcow2Image::release_freed() {
    for (uint64_t cluster : refcounts_->take_freed()) {
        if (refcounts_->get(cluster) != 0) {
            continue;  // allocated again since it was freed
        }
        l2_cache_->drop(cluster << cluster_bits_);
        file_.punch_hole(cluster << cluster_bits_, cluster_size_);
    }
}

void Qcow2Image::apply_pending_frees() {
    std::vector<std::pair<uint64_t, uint64_t>> frees = std::exchange(pending_frees_, {});
    for (const auto& [offset, length] : frees) {
        refcounts_->update(offset, length, -1);
    }
    release_freed();
    refcounts_->write_back();
}

void Qcow2Image::write_back_metadata() {
    if (refcounts_->has_dirty()) {
        refcounts_->write_back();
        file_.sync();
    }
    bool tables = l2_cache_->has_dirty();
    l2_cache_->write_back();
    if (!dirty_l1_.empty()) {
        if (tables) {
            file_.sync();
        }
        write_l1_entries();
        tables = true;
    }
    if (!pending_frees_.empty()) {
        if (tables) {
            file_.sync();
        }
        apply_pending_frees();
    }
}

// The tables, in their crash-safe order; the caller then syncs the file.
void Qcow2Image::write_back_for_flush() {
    std::lock_guard meta(meta_);
    if (corrupt_) {
        throw IoError(fmt::format("disk {}: the image is corrupt; writes are refused", name()));
    }
    write_back_metadata();
}

void Qcow2Image::close() {
    std::unique_lock io(io_);
    std::lock_guard meta(meta_);
    if (read_only_ || !marked_dirty_ || corrupt_) {
        return;
    }
    write_back_metadata();
    file_.sync();
    incompatible_ &= ~qcow2::kIncompatDirty;
    write_header_u64(offsetof(qcow2::Header, incompatible_features), incompatible_);
    file_.sync();
    marked_dirty_ = false;
}

Qcow2Image::~Qcow2Image() {
    try {
        close();
    } catch (const std::exception& e) {
        spdlog::error("disk {}: closing: {}", name(), e.what());
    }
}

// ---- creation ----

void Qcow2Image::create(ImageFile& file, uint64_t size, uint32_t cluster_size,
                        const std::string& backing_file,
                        std::optional<ImageFormat> backing_format) {
    const std::string path = file.path().string();
    if (cluster_size < 512 || cluster_size > (2u << 20) || (cluster_size & (cluster_size - 1))) {
        fail("disk {}: cluster size {} is invalid (a power of two from 512 bytes to 2 MiB)", path,
             cluster_size);
    }
    if (size > qcow2::kMaxVirtualSize) {
        fail("disk {}: virtual size {} is too large (at most {})", path, size,
             qcow2::kMaxVirtualSize);
    }
    if (backing_file.size() > qcow2::kMaxBackingNameLength) {
        fail("disk {}: backing file name of {} bytes (at most {})", path, backing_file.size(),
             qcow2::kMaxBackingNameLength);
    }
    unsigned bits = static_cast<unsigned>(__builtin_ctz(cluster_size));
    uint64_t cs = cluster_size;
    uint64_t l1_size = div_round_up(size, cs * (cs / 8));
    if (l1_size * 8 > qcow2::kMaxL1Bytes) {
        fail("disk {}: virtual size {} needs an L1 table over {} bytes; use larger clusters", path,
             size, qcow2::kMaxL1Bytes);
    }
    uint64_t l1_clusters = std::max<uint64_t>(1, div_round_up(l1_size * 8, cs));
    uint64_t per_block = cs / 2;
    uint64_t table_clusters = 1;
    uint64_t blocks = 1;
    for (;;) {
        uint64_t total = 1 + table_clusters + blocks + l1_clusters;
        uint64_t need_blocks = div_round_up(total, per_block);
        uint64_t need_table = div_round_up(need_blocks * 8, cs);
        if (need_blocks == blocks && need_table == table_clusters) {
            break;
        }
        blocks = need_blocks;
        table_clusters = need_table;
    }
    uint64_t table_at = 1;
    uint64_t blocks_at = table_at + table_clusters;
    uint64_t l1_at = blocks_at + blocks;
    uint64_t total = l1_at + l1_clusters;

    std::vector<uint8_t> header(cs);
    qcow2::Header h{};
    h.magic.set(qcow2::kMagic);
    h.version.set(3);
    h.cluster_bits.set(bits);
    h.size.set(size);
    h.l1_size.set(static_cast<uint32_t>(l1_size));
    h.l1_table_offset.set(l1_at * cs);
    h.refcount_table_offset.set(table_at * cs);
    h.refcount_table_clusters.set(static_cast<uint32_t>(table_clusters));
    h.refcount_order.set(qcow2::kRefcountOrder);
    h.header_length.set(sizeof(qcow2::Header));
    size_t at = sizeof(qcow2::Header);
    auto extension = [&](uint32_t type, std::span<const uint8_t> body) {
        size_t padded = div_round_up(body.size(), 8) * 8;
        if (at + 8 + padded + 8 > cs) {
            fail("disk {}: the header extensions do not fit in a {}-byte cluster", path, cs);
        }
        qcow2::HeaderExtension ext;
        ext.type.set(type);
        ext.length.set(static_cast<uint32_t>(body.size()));
        std::memcpy(header.data() + at, &ext, sizeof(ext));
        std::copy(body.begin(), body.end(), header.begin() + static_cast<ptrdiff_t>(at + 8));
        at += 8 + padded;
    };
    if (!backing_file.empty()) {
        std::string format(format_name(backing_format.value_or(ImageFormat::raw)));
        extension(qcow2::kExtBackingFormat,
                  {reinterpret_cast<const uint8_t*>(format.data()), format.size()});
    }
    // Names for the features a reader may not know, as qemu-img writes them.
    std::vector<qcow2::FeatureName> features;
    auto feature = [&](uint8_t type, uint8_t bit, const char* text) {
        qcow2::FeatureName f{};
        f.type = type;
        f.bit = bit;
        std::memcpy(f.name, text, std::min(sizeof(f.name), std::strlen(text)));
        features.push_back(f);
    };
    feature(0, 0, "dirty bit");
    feature(0, 1, "corrupt bit");
    feature(1, 0, "lazy refcounts");
    if (!backing_file.empty() && at + 8 + features.size() * 48 + 8 + backing_file.size() > cs) {
        features.clear();  // small clusters: the backing file name matters more
    }
    if (!features.empty()) {
        extension(qcow2::kExtFeatureTable, {reinterpret_cast<const uint8_t*>(features.data()),
                                            features.size() * sizeof(qcow2::FeatureName)});
    }
    at += 8;  // the end marker: zeroes
    if (!backing_file.empty()) {
        if (at + backing_file.size() > cs) {
            fail("disk {}: the backing file name does not fit in a {}-byte cluster", path, cs);
        }
        h.backing_file_offset.set(at);
        h.backing_file_size.set(static_cast<uint32_t>(backing_file.size()));
        std::copy(backing_file.begin(), backing_file.end(),
                  header.begin() + static_cast<ptrdiff_t>(at));
    }
    std::memcpy(header.data(), &h, sizeof(h));

    std::vector<uint8_t> table(table_clusters * cs);
    for (uint64_t b = 0; b < blocks; ++b) {
        store<uint64_t>(table.data(), b, (blocks_at + b) * cs);
    }
    std::vector<uint8_t> refblocks(blocks * cs);
    for (uint64_t c = 0; c < total; ++c) {
        store<uint16_t>(refblocks.data(), c, 1);
    }
    file.truncate(total * cs);
    file.write(table_at * cs, table);
    file.write(blocks_at * cs, refblocks);
    file.write(0, header);
    file.sync();
}

}  // namespace vireo
