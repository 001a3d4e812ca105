// Internal snapshots: the snapshot table, and what taking, reverting to and
// deleting a snapshot does to the L1 tables and refcounts (as QEMU's
// block/qcow2-snapshot.c does it, so qemu-img reads what Vireo writes).

#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/error.h"
#include "block/qcow2_format.h"
#include "block/qcow2_image.h"

namespace vireo {

using qcow2::load;
using qcow2::store;

namespace {

uint64_t div_round_up(uint64_t value, uint64_t divisor) {
    return (value + divisor - 1) / divisor;
}

}  // namespace

std::vector<SnapshotInfo> Qcow2Image::snapshots() const {
    std::lock_guard meta(meta_);
    std::vector<SnapshotInfo> out;
    for (const Snapshot& s : snapshots_) {
        out.push_back({s.id, s.name, s.date_sec, s.date_nsec, s.vm_clock_ns, s.vm_state_size(),
                       s.disk_size(size_)});
    }
    return out;
}

size_t Qcow2Image::find_snapshot(const std::string& id_or_name) const {
    for (size_t i = 0; i < snapshots_.size(); ++i) {
        if (snapshots_[i].id == id_or_name) {
            return i;
        }
    }
    for (size_t i = 0; i < snapshots_.size(); ++i) {
        if (snapshots_[i].name == id_or_name) {
            return i;
        }
    }
    fail("disk {}: no snapshot with id or name '{}'", name(), id_or_name);
}

// Every cluster an L1 table reaches: its L2 tables and their data clusters.
void Qcow2Image::update_l1_refcounts(const std::vector<uint64_t>& l1, int64_t addend) {
    std::vector<uint8_t> table(cluster_size_);
    for (uint64_t l1_entry : l1) {
        uint64_t l2 = l1_entry & qcow2::kOffsetMask;
        if (l2 == 0) {
            continue;
        }
        std::span<uint8_t> cached = l2_cache_->get(l2);
        std::copy(cached.begin(), cached.end(), table.begin());
        for (uint64_t j = 0; j < l2_entries_; ++j) {
            uint64_t entry = load<uint64_t>(table.data(), j);
            ClusterKind kind = kind_of(entry);
            if (kind == ClusterKind::compressed) {
                qcow2::CompressedDescriptor desc = qcow2::decode_compressed(entry, cluster_bits_);
                refcounts_->update(desc.offset, desc.length, addend);
            } else if (uint64_t offset = entry & qcow2::kOffsetMask;
                       offset != 0 && kind != ClusterKind::unallocated) {
                refcounts_->update(offset, cluster_size_, addend);
            }
        }
        refcounts_->update(l2, cluster_size_, addend);
    }
}

// Refuses, before anything changes, a snapshot that would push a refcount past 0xffff.
void Qcow2Image::check_l1_refcounts(const std::vector<uint64_t>& l1) {
    auto check = [&](uint64_t offset, uint64_t length) {
        for (uint64_t c = offset >> cluster_bits_; c <= (offset + length - 1) >> cluster_bits_;
             ++c) {
            if (refcounts_->get(c) >= refcounts_->max_refcount()) {
                fail("disk {}: refcount overflow: cluster at {:#x} already has {} references",
                     name(), c << cluster_bits_, refcounts_->get(c));
            }
        }
    };
    std::vector<uint8_t> table(cluster_size_);
    for (uint64_t l1_entry : l1) {
        uint64_t l2 = l1_entry & qcow2::kOffsetMask;
        if (l2 == 0) {
            continue;
        }
        check(l2, cluster_size_);
        std::span<uint8_t> cached = l2_cache_->get(l2);
        std::copy(cached.begin(), cached.end(), table.begin());
        for (uint64_t j = 0; j < l2_entries_; ++j) {
            uint64_t entry = load<uint64_t>(table.data(), j);
            ClusterKind kind = kind_of(entry);
            if (kind == ClusterKind::compressed) {
                qcow2::CompressedDescriptor desc = qcow2::decode_compressed(entry, cluster_bits_);
                check(desc.offset, desc.length);
            } else if (uint64_t offset = entry & qcow2::kOffsetMask;
                       offset != 0 && kind != ClusterKind::unallocated) {
                check(offset, cluster_size_);
            }
        }
    }
}

// COPIED (bit 63) in the active tables says "refcount exactly one: write in place".
void Qcow2Image::fix_copied_flags() {
    for (uint64_t i = 0; i < l1_.size(); ++i) {
        uint64_t l2 = l1_[i] & qcow2::kOffsetMask;
        if (l2 == 0) {
            continue;
        }
        uint64_t wanted_l1 = refcounts_->get(l2 >> cluster_bits_) == 1 ? l1_[i] | qcow2::kCopied
                                                                       : l1_[i] & ~qcow2::kCopied;
        if (wanted_l1 != l1_[i]) {
            l1_[i] = wanted_l1;
            dirty_l1_.insert(i);
        }
        std::vector<std::pair<uint64_t, uint64_t>> changes;
        {
            std::span<uint8_t> table = l2_cache_->get(l2);
            for (uint64_t j = 0; j < l2_entries_; ++j) {
                uint64_t entry = load<uint64_t>(table.data(), j);
                ClusterKind kind = kind_of(entry);
                uint64_t offset = entry & qcow2::kOffsetMask;
                if (kind == ClusterKind::compressed || offset == 0) {
                    continue;
                }
                uint64_t wanted = refcounts_->get(offset >> cluster_bits_) == 1
                                      ? entry | qcow2::kCopied
                                      : entry & ~qcow2::kCopied;
                if (wanted != entry) {
                    changes.emplace_back(j, wanted);
                }
            }
        }
        if (!changes.empty()) {
            std::span<uint8_t> table = l2_cache_->get(l2);
            for (const auto& [j, wanted] : changes) {
                store<uint64_t>(table.data(), j, wanted);
            }
            l2_cache_->mark_dirty(l2);
        }
    }
}

void Qcow2Image::write_snapshot_table(const std::vector<Snapshot>& snapshots) {
    std::vector<uint8_t> raw;
    for (const Snapshot& s : snapshots) {
        qcow2::SnapshotHeader h{};
        h.l1_table_offset.set(s.l1_offset);
        h.l1_size.set(s.l1_size);
        h.id_str_size.set(static_cast<uint16_t>(s.id.size()));
        h.name_size.set(static_cast<uint16_t>(s.name.size()));
        h.date_sec.set(s.date_sec);
        h.date_nsec.set(s.date_nsec);
        h.vm_clock_nsec.set(s.vm_clock_ns);
        h.vm_state_size.set(s.vm_state_size32);
        h.extra_data_size.set(static_cast<uint32_t>(s.extra.size()));
        const auto* bytes = reinterpret_cast<const uint8_t*>(&h);
        raw.insert(raw.end(), bytes, bytes + sizeof(h));
        raw.insert(raw.end(), s.extra.begin(), s.extra.end());
        raw.insert(raw.end(), s.id.begin(), s.id.end());
        raw.insert(raw.end(), s.name.begin(), s.name.end());
        raw.resize(div_round_up(raw.size(), 8) * 8);
    }
    if (raw.size() > qcow2::kMaxSnapshotTableBytes) {
        fail("disk {}: the snapshot table would exceed {} bytes", name(),
             qcow2::kMaxSnapshotTableBytes);
    }
    uint64_t offset = 0;
    if (!raw.empty()) {
        offset = allocate_clusters(div_round_up(raw.size(), cluster_size_));
        file_.write(offset, raw);
    }
    write_back_metadata();
    file_.sync();
    // One write switches the header to the new table (nb_snapshots, snapshots_offset).
    struct {
        qcow2::Be32 count;
        qcow2::Be64 offset;
    } fields;
    static_assert(sizeof(fields) == 12);
    fields.count.set(static_cast<uint32_t>(snapshots.size()));
    fields.offset.set(offset);
    file_.write(offsetof(qcow2::Header, nb_snapshots),
                {reinterpret_cast<const uint8_t*>(&fields), sizeof(fields)});
    file_.sync();
    uint64_t old_offset = snapshots_offset_;
    uint64_t old_bytes = snapshots_bytes_;
    snapshots_ = snapshots;
    snapshots_offset_ = offset;
    snapshots_bytes_ = raw.size();
    if (old_bytes > 0) {
        refcounts_->update(old_offset, old_bytes, -1);
        release_freed();
    }
}

SnapshotInfo Qcow2Image::create_snapshot(const std::string& snapshot_name) {
    std::unique_lock io(io_);
    std::lock_guard meta(meta_);
    if (snapshot_name.empty() || snapshot_name.size() > 0xffff) {
        fail("disk {}: a snapshot name must have 1 to 65535 bytes", name());
    }
    for (const Snapshot& s : snapshots_) {
        if (s.name == snapshot_name) {
            fail("disk {}: a snapshot named '{}' exists already (id {})", name(), snapshot_name,
                 s.id);
        }
    }
    if (snapshots_.size() >= qcow2::kMaxSnapshots) {
        fail("disk {}: already {} snapshots, the most qcow2 allows", name(), snapshots_.size());
    }
    // Refused before the first byte is written.
    check_l1_refcounts(l1_);
    begin_write();
    write_back_metadata();

    uint64_t next_id = 1;
    for (const Snapshot& s : snapshots_) {
        if (!s.id.empty() && s.id.find_first_not_of("0123456789") == std::string::npos &&
            s.id.size() < 19) {
            next_id = std::max<uint64_t>(next_id, std::stoull(s.id) + 1);
        }
    }
    Snapshot s;
    s.id = std::to_string(next_id);
    s.name = snapshot_name;
    auto now = std::chrono::system_clock::now().time_since_epoch();
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
    s.date_sec = static_cast<uint32_t>(ns / 1000000000);
    s.date_nsec = static_cast<uint32_t>(ns % 1000000000);
    s.l1_size = static_cast<uint32_t>(l1_.size());
    s.extra.resize(sizeof(qcow2::SnapshotExtra));
    store<uint64_t>(s.extra.data(), 0, 0);
    store<uint64_t>(s.extra.data(), 1, size_);

    // 1. A copy of the active L1 table.
    if (!l1_.empty()) {
        std::vector<uint8_t> raw(div_round_up(l1_.size() * 8, cluster_size_) * cluster_size_);
        for (size_t i = 0; i < l1_.size(); ++i) {
            store<uint64_t>(raw.data(), i, l1_[i]);
        }
        s.l1_offset = allocate_clusters(raw.size() / cluster_size_);
        file_.write(s.l1_offset, raw);
    }
    // 2. One more reference to everything it reaches; nothing is COPIED any more.
    update_l1_refcounts(l1_, +1);
    fix_copied_flags();
    write_back_metadata();
    file_.sync();
    // 3. The table that names it.
    std::vector<Snapshot> table = snapshots_;
    table.push_back(s);
    write_snapshot_table(table);
    return {s.id, s.name, s.date_sec, s.date_nsec, 0, 0, size_};
}

void Qcow2Image::replace_active_l1(const std::vector<uint64_t>& l1) {
    std::vector<uint8_t> raw(div_round_up(std::max<size_t>(l1.size(), 1) * 8, cluster_size_) *
                             cluster_size_);
    for (size_t i = 0; i < l1.size(); ++i) {
        store<uint64_t>(raw.data(), i, l1[i]);
    }
    uint64_t offset = allocate_clusters(raw.size() / cluster_size_);
    file_.write(offset, raw);
    write_back_metadata();
    file_.sync();
    struct {
        qcow2::Be32 size;
        qcow2::Be64 offset;
    } fields;
    static_assert(sizeof(fields) == 12);
    fields.size.set(static_cast<uint32_t>(l1.size()));
    fields.offset.set(offset);
    file_.write(offsetof(qcow2::Header, l1_size),
                {reinterpret_cast<const uint8_t*>(&fields), sizeof(fields)});
    file_.sync();
    uint64_t old_offset = l1_offset_;
    uint64_t old_bytes = l1_.size() * 8;
    l1_ = l1;
    l1_offset_ = offset;
    dirty_l1_.clear();
    active_l2_.clear();
    for (uint64_t entry : l1_) {
        if (uint64_t l2 = entry & qcow2::kOffsetMask) {
            active_l2_.insert(l2 >> cluster_bits_);
        }
    }
    if (old_bytes > 0) {
        refcounts_->update(old_offset, old_bytes, -1);
        release_freed();
    }
}

void Qcow2Image::revert_to_snapshot(const std::string& id_or_name) {
    std::unique_lock io(io_);
    std::lock_guard meta(meta_);
    const Snapshot s = snapshots_[find_snapshot(id_or_name)];
    begin_write();
    write_back_metadata();
    std::vector<uint64_t> snapshot_l1 = read_l1(s.l1_offset, s.l1_size, "snapshot L1 table");
    uint64_t file_size = file_.size();
    for (uint64_t entry : snapshot_l1) {
        uint64_t l2 = entry & qcow2::kOffsetMask;
        if (l2 != 0 && (l2 % cluster_size_ != 0 || l2 >= file_size)) {
            fail("disk {}: snapshot '{}' points at an L2 table at {:#x} that is not one", name(),
                 s.id, l2);
        }
    }
    uint64_t new_size = s.disk_size(size_);
    uint64_t needed = div_round_up(new_size, cluster_size_ * l2_entries_);
    if (snapshot_l1.size() < needed) {
        snapshot_l1.resize(needed, 0);
    }
    check_l1_refcounts(snapshot_l1);
    // The snapshot's clusters gain the active table's reference first, so
    // that no crash leaves them under-counted.
    update_l1_refcounts(snapshot_l1, +1);
    write_back_metadata();
    file_.sync();
    std::vector<uint64_t> old_l1 = l1_;
    if (new_size > size_) {
        replace_active_l1(snapshot_l1);
        write_header_u64(offsetof(qcow2::Header, size), new_size);
    } else {
        write_header_u64(offsetof(qcow2::Header, size), new_size);
        file_.sync();
        replace_active_l1(snapshot_l1);
    }
    size_ = new_size;
    update_l1_refcounts(old_l1, -1);
    release_freed();
    fix_copied_flags();
    write_back_metadata();
    file_.sync();
}

void Qcow2Image::delete_snapshot(const std::string& id_or_name) {
    std::unique_lock io(io_);
    std::lock_guard meta(meta_);
    size_t index = find_snapshot(id_or_name);
    const Snapshot s = snapshots_[index];
    begin_write();
    write_back_metadata();
    std::vector<uint64_t> snapshot_l1 = read_l1(s.l1_offset, s.l1_size, "snapshot L1 table");
    // Forget the snapshot first: a crash from here on only leaks clusters.
    std::vector<Snapshot> table = snapshots_;
    table.erase(table.begin() + static_cast<ptrdiff_t>(index));
    write_snapshot_table(table);
    update_l1_refcounts(snapshot_l1, -1);
    refcounts_->update(s.l1_offset, uint64_t{s.l1_size} * 8, -1);
    release_freed();
    fix_copied_flags();
    write_back_metadata();
    file_.sync();
}

}  // namespace vireo
