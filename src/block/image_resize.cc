#include "block/image_resize.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "base/error.h"
#include "block/image_factory.h"
#include "block/image_file.h"
#include "block/image_lock.h"
#include "block/qcow2_format.h"
#include "block/qcow2_image.h"
#include "block/qcow2_refcounts.h"

namespace vireo {
namespace {

uint64_t div_round_up(uint64_t value, uint64_t divisor) {
    return (value + divisor - 1) / divisor;
}

ImageFile open_locked(const std::filesystem::path& path) {
    ImageFile file = ImageFile::open(path, true);
    lock_image(file.fd(), path, true);
    struct stat st {};
    if (fstat(file.fd(), &st) == 0 && S_ISBLK(st.st_mode)) {
        fail("disk {}: a block device's size is the device's; it cannot be resized here",
             path.string());
    }
    return file;
}

void resize_raw(const std::filesystem::path& path, uint64_t new_size, bool allow_shrink) {
    ImageFile file = open_locked(path);
    if (new_size < file.size() && !allow_shrink) {
        fail("disk {}: shrinking from {} to {} bytes is refused", path.string(), file.size(),
             new_size);
    }
    file.truncate(new_size);  // growing leaves a hole: zeroes, no space taken
    file.sync();
}

// Writes the header fields from `size` (offset 24) through `through_end` in one
// write: they share the first sector, so the switch is all or nothing.
void write_header_fields(ImageFile& file, const qcow2::Header& header, size_t through_end) {
    constexpr size_t first = offsetof(qcow2::Header, size);
    file.write(first, {reinterpret_cast<const uint8_t*>(&header) + first, through_end - first});
    file.sync();
}

// The offline half of a qcow2 resize: the image is closed cleanly (its
// refcounts are exact) and locked again here.
void set_qcow2_size(const std::filesystem::path& path, uint64_t new_size) {
    ImageFile file = open_locked(path);
    qcow2::Header header{};
    file.read(0, {reinterpret_cast<uint8_t*>(&header), sizeof(header)});
    const unsigned bits = header.cluster_bits.get();
    const uint64_t cluster_size = uint64_t{1} << bits;
    const uint64_t l1_size = header.l1_size.get();
    const uint64_t l1_offset = header.l1_table_offset.get();
    const uint64_t needed = div_round_up(new_size, cluster_size * (cluster_size / 8));
    if (needed * 8 > qcow2::kMaxL1Bytes) {
        fail("disk {}: {} bytes need an L1 table over {} bytes; QEMU refuses those too",
             path.string(), new_size, qcow2::kMaxL1Bytes);
    }
    header.size.set(new_size);
    if (needed <= l1_size) {  // a larger table than needed is allowed
        write_header_fields(file, header, offsetof(qcow2::Header, size) + 8);
        return;
    }
    header.l1_size.set(static_cast<uint32_t>(needed));
    const uint64_t held_entries = div_round_up(l1_size * 8, cluster_size) * cluster_size / 8;
    if (needed <= held_entries) {
        // The table's last cluster has room: its new entries become zeroes there.
        std::vector<uint8_t> zeroes((needed - l1_size) * 8);
        file.write(l1_offset + l1_size * 8, zeroes);
        file.sync();
        write_header_fields(file, header, offsetof(qcow2::Header, l1_size) + 4);
        return;
    }
    // A new, larger table elsewhere: written and counted before the header
    // names it; the old one is released after, so a crash only leaks.
    Qcow2Refcounts refcounts(file, bits, 256 * 1024);
    refcounts.load(header.refcount_table_offset.get(), header.refcount_table_clusters.get());
    const uint64_t clusters = div_round_up(needed * 8, cluster_size);
    std::vector<uint8_t> table(clusters * cluster_size);
    file.read(l1_offset, {table.data(), l1_size * 8});
    const uint64_t old_first = l1_offset / cluster_size;
    const uint64_t old_end = div_round_up(l1_offset + l1_size * 8, cluster_size);
    uint64_t offset = refcounts.allocate(clusters, [&](uint64_t cluster) {
        return cluster == 0 || (cluster >= old_first && cluster < old_end);
    });
    file.write(offset, table);
    refcounts.write_back();
    file.sync();
    header.l1_table_offset.set(offset);
    write_header_fields(file, header, offsetof(qcow2::Header, l1_table_offset) + 8);
    if (l1_size > 0) {
        refcounts.update(l1_offset, l1_size * 8, -1);
        refcounts.take_freed();
        refcounts.write_back();
        file.sync();
    }
}

void resize_qcow2(const std::filesystem::path& path, uint64_t new_size, bool allow_shrink) {
    if (new_size % 512 != 0) {
        fail("disk {}: the new size {} is not a multiple of 512 bytes", path.string(), new_size);
    }
    OpenOptions options;
    options.format = ImageFormat::qcow2;
    uint64_t old_size = 0;
    uint64_t cluster_size = 0;
    uint64_t backing_size = 0;
    {
        // A full open checks the image and repairs the refcounts of one not
        // closed cleanly, so the offline step below starts from exact counts.
        std::unique_ptr<DiskImage> image = open_image(path, options);
        auto& qcow2 = dynamic_cast<Qcow2Image&>(*image);
        old_size = qcow2.size();
        cluster_size = qcow2.cluster_size();
        backing_size = qcow2.backing() != nullptr ? qcow2.backing()->size() : 0;
        if (new_size < old_size) {
            if (!allow_shrink) {
                fail("disk {}: shrinking from {} to {} bytes is refused", path.string(), old_size,
                     new_size);
            }
            // Zeroes in the cut cluster's tail and no clusters past it, so that
            // growing again later shows zeroes, not old data.
            uint64_t boundary =
                std::min(div_round_up(new_size, cluster_size) * cluster_size, old_size);
            if (boundary > new_size) {
                qcow2.write_zeroes(new_size, boundary - new_size, false);
            }
            if (old_size > boundary) {
                qcow2.discard(boundary, old_size - boundary);
            }
            qcow2.flush();
        }
    }
    if (new_size == old_size) {
        return;
    }
    set_qcow2_size(path, new_size);
    if (new_size > old_size) {
        // The new space must read as zeroes: neither a longer backing file nor
        // the tail of the old last cluster may show through.
        uint64_t end = std::min(
            new_size, std::max(div_round_up(old_size, cluster_size) * cluster_size, backing_size));
        if (end > old_size) {
            std::unique_ptr<DiskImage> image = open_image(path, options);
            image->write_zeroes(old_size, end - old_size, false);
            image->flush();
        }
    }
}

}  // namespace

void resize_image(const std::filesystem::path& path, uint64_t new_size, bool allow_shrink) {
    if (probe_format(path) == ImageFormat::raw) {
        resize_raw(path, new_size, allow_shrink);
    } else {
        resize_qcow2(path, new_size, allow_shrink);
    }
}

}  // namespace vireo
