// check(): every reference the tables make, counted and compared with the
// refcounts, as `qemu-img check` does.

#include <algorithm>

#include "base/error.h"
#include "block/qcow2_format.h"
#include "block/qcow2_image.h"

namespace vireo {

using qcow2::load;
using qcow2::store;

namespace {

constexpr size_t kMaxMessages = 100;

uint64_t div_round_up(uint64_t value, uint64_t divisor) {
    return (value + divisor - 1) / divisor;
}

}  // namespace

CheckReport Qcow2Image::check(CheckRepair repair) {
    if (repair != CheckRepair::none && read_only_) {
        fail("disk {}: opened read-only; a repair needs it writable", name());
    }
    std::unique_lock io(io_);
    std::lock_guard meta(meta_);
    CheckReport report = check_locked(repair);
    if (repair != CheckRepair::none) {
        write_back_metadata();
        file_.sync();
    }
    return report;
}

CheckReport Qcow2Image::check_locked(CheckRepair repair) {
    CheckReport report;
    auto note = [&](std::string message) {
        if (report.messages.size() < kMaxMessages) {
            report.messages.push_back(std::move(message));
        }
    };
    auto structural = [&](std::string message) {
        ++report.corruptions;
        ++report.unrepairable;
        note(std::move(message));
    };
    if (!read_only_) {
        write_back_metadata();
    }
    if (repair != CheckRepair::none) {
        begin_write();
    }
    uint64_t file_size = file_.size();
    std::vector<uint32_t> refs(div_round_up(file_size, cluster_size_));
    auto add = [&](uint64_t offset, uint64_t length, const char* what) {
        if (length == 0) {
            return true;
        }
        uint64_t last = (offset + length - 1) >> cluster_bits_;
        if (last >= refs.size()) {
            structural(fmt::format("{} at {:#x} lies beyond the end of the file", what, offset));
            return false;
        }
        for (uint64_t c = offset >> cluster_bits_; c <= last; ++c) {
            ++refs[c];
        }
        return true;
    };

    std::vector<uint8_t> table(cluster_size_);
    auto walk = [&](const std::vector<uint64_t>& l1, const char* which) {
        for (size_t i = 0; i < l1.size(); ++i) {
            uint64_t l2 = l1[i] & qcow2::kOffsetMask;
            if (l1[i] & qcow2::kL1Reserved) {
                structural(
                    fmt::format("{} L1 entry {} has reserved bits set: {:#x}", which, i, l1[i]));
            }
            if (l2 == 0) {
                continue;
            }
            if (l2 % cluster_size_ != 0) {
                structural(fmt::format("{} L2 table {} at {:#x} is not aligned", which, i, l2));
                continue;
            }
            if (!add(l2, cluster_size_, "L2 table")) {
                continue;
            }
            file_.read(l2, table);
            for (uint64_t j = 0; j < l2_entries_; ++j) {
                uint64_t entry = load<uint64_t>(table.data(), j);
                ClusterKind kind = kind_of(entry);
                if (kind == ClusterKind::compressed) {
                    qcow2::CompressedDescriptor desc =
                        qcow2::decode_compressed(entry, cluster_bits_);
                    add(desc.offset & ~uint64_t{511}, desc.length + (desc.offset & 511),
                        "compressed cluster");
                    continue;
                }
                uint64_t offset = entry & qcow2::kOffsetMask;
                if (offset == 0) {
                    continue;
                }
                if (offset % cluster_size_ != 0) {
                    structural(
                        fmt::format("{} L2 table at {:#x} entry {}: data cluster {:#x} is "
                                    "not aligned",
                                    which, l2, j, offset));
                    continue;
                }
                add(offset, cluster_size_, "data cluster");
            }
        }
    };

    add(0, cluster_size_, "header");
    add(l1_offset_, l1_.size() * 8, "L1 table");
    walk(l1_, "active");
    for (const Snapshot& s : snapshots_) {
        add(s.l1_offset, uint64_t{s.l1_size} * 8, "snapshot L1 table");
        walk(read_l1(s.l1_offset, s.l1_size, "snapshot L1 table"), "snapshot");
    }
    add(snapshots_offset_, snapshots_bytes_, "snapshot table");
    add(refcounts_->table_offset(), uint64_t{refcounts_->table_clusters()} * cluster_size_,
        "refcount table");
    for (uint64_t block : refcounts_->table()) {
        add(block, block ? cluster_size_ : 0, "refcount block");
    }

    for (uint64_t c = 0; c < refs.size(); ++c) {
        uint64_t stored = refcounts_->get(c);
        if (stored > refs[c]) {
            ++report.leaks;
            note(fmt::format("leaked cluster {:#x}: refcount {}, references {}", c << cluster_bits_,
                             stored, refs[c]));
            if (repair != CheckRepair::none) {
                refcounts_->set(c, refs[c]);
                ++report.leaks_fixed;
            }
        } else if (stored < refs[c]) {
            ++report.corruptions;
            note(fmt::format("cluster {:#x}: refcount {} but {} references", c << cluster_bits_,
                             stored, refs[c]));
            if (repair == CheckRepair::all && refs[c] <= refcounts_->max_refcount()) {
                refcounts_->set(c, refs[c]);
                ++report.corruptions_fixed;
            }
        }
    }
    refcounts_->take_freed();

    // COPIED must say exactly "refcount is one" in the active tables.
    for (uint64_t i = 0; i < l1_.size(); ++i) {
        uint64_t l2 = l1_[i] & qcow2::kOffsetMask;
        if (l2 == 0 || l2 % cluster_size_ != 0 || (l2 >> cluster_bits_) >= refs.size()) {
            continue;
        }
        bool one = refcounts_->get(l2 >> cluster_bits_) == 1;
        if (one != ((l1_[i] & qcow2::kCopied) != 0)) {
            ++report.corruptions;
            note(fmt::format("L1 entry {}: COPIED flag wrong for refcount {}", i,
                             refcounts_->get(l2 >> cluster_bits_)));
            if (repair == CheckRepair::all) {
                l1_[i] ^= qcow2::kCopied;
                dirty_l1_.insert(i);
                ++report.corruptions_fixed;
            }
        }
        std::vector<std::pair<uint64_t, uint64_t>> fixes;
        {
            std::span<uint8_t> cached = l2_cache_->get(l2);
            for (uint64_t j = 0; j < l2_entries_; ++j) {
                uint64_t entry = load<uint64_t>(cached.data(), j);
                uint64_t offset = entry & qcow2::kOffsetMask;
                if (kind_of(entry) == ClusterKind::compressed || offset == 0 ||
                    offset % cluster_size_ != 0 || (offset >> cluster_bits_) >= refs.size()) {
                    continue;
                }
                bool single = refcounts_->get(offset >> cluster_bits_) == 1;
                if (single != ((entry & qcow2::kCopied) != 0)) {
                    ++report.corruptions;
                    note(fmt::format("L2 table {:#x} entry {}: COPIED flag wrong for refcount {}",
                                     l2, j, refcounts_->get(offset >> cluster_bits_)));
                    fixes.emplace_back(j, entry ^ qcow2::kCopied);
                }
            }
        }
        if (repair == CheckRepair::all && !fixes.empty()) {
            std::span<uint8_t> cached = l2_cache_->get(l2);
            for (const auto& [j, entry] : fixes) {
                store<uint64_t>(cached.data(), j, entry);
            }
            l2_cache_->mark_dirty(l2);
            report.corruptions_fixed += fixes.size();
        }
    }
    return report;
}

}  // namespace vireo
