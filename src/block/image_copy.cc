#include "block/image_copy.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "base/error.h"
#include "block/disk_image.h"
#include "block/image_factory.h"
#include "block/raw_image.h"

namespace vireo {

namespace {

constexpr uint64_t kChunk = 2 << 20;  // bytes read at once: a multiple of every cluster size
// The smallest zero run left out of a raw target: a file system block.
constexpr uint64_t kRawGranule = 4096;

bool all_zero(std::span<const uint8_t> data) {
    return data.empty() ||
           (data[0] == 0 && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0);
}

// False when the range is certainly zeroes without reading it: a hole of a
// raw file (SEEK_DATA). Reading a large hole costs the kernel as much as data.
bool holds_data(const DiskImage& image, uint64_t offset, uint64_t length) {
    const auto* raw = dynamic_cast<const RawImage*>(&image);
    if (raw == nullptr) {
        return true;  // qcow2 reads unallocated clusters without I/O
    }
    off_t data = lseek(raw->file().fd(), static_cast<off_t>(offset), SEEK_DATA);
    if (data < 0) {
        return errno != ENXIO;  // ENXIO: no data past offset; other errors: just read
    }
    return static_cast<uint64_t>(data) < offset + length;
}

}  // namespace

CopyResult copy_image(const std::filesystem::path& source, const std::filesystem::path& target,
                      const CopyOptions& options, const CopyProgress& progress) {
    OpenOptions read_only;
    read_only.read_only = true;
    std::unique_ptr<DiskImage> from = open_image(source, read_only);
    CopyResult result;
    result.virtual_size = from->size();

    CreateOptions create;
    create.format = options.format;
    create.size = result.virtual_size;
    create.cluster_size = options.cluster_size;
    if (options.format == ImageFormat::qcow2 && create.size == 0) {
        fail("disk {}: the source {} is empty; a qcow2 image needs a size", target.string(),
             source.string());
    }
    create_image(target, create);
    try {
        OpenOptions writable;
        writable.format = options.format;
        std::unique_ptr<DiskImage> to = open_image(target, writable);
        // A zero run shorter than a cluster is written anyway: its cluster is
        // allocated for the data beside it.
        const uint64_t granule =
            options.format == ImageFormat::qcow2 ? options.cluster_size : kRawGranule;
        std::vector<uint8_t> buffer(kChunk);
        for (uint64_t offset = 0; offset < result.virtual_size; offset += kChunk) {
            const uint64_t length = std::min(kChunk, result.virtual_size - offset);
            std::span<uint8_t> chunk(buffer.data(), length);
            if (!holds_data(*from, offset, length)) {
                if (progress) {
                    progress(offset + length, result.virtual_size);
                }
                continue;
            }
            from->read(offset, chunk);
            // Write each run of granules holding data in one request.
            auto write_run = [&](uint64_t start, uint64_t end) {
                to->write(offset + start, chunk.subspan(start, end - start));
                result.data_bytes += end - start;
            };
            uint64_t run_start = 0;
            bool in_run = false;
            for (uint64_t at = 0; at < length; at += granule) {
                bool data = !all_zero(chunk.subspan(at, std::min(granule, length - at)));
                if (data && !in_run) {
                    run_start = at;
                    in_run = true;
                } else if (!data && in_run) {
                    write_run(run_start, at);
                    in_run = false;
                }
            }
            if (in_run) {
                write_run(run_start, length);
            }
            if (progress) {
                progress(offset + length, result.virtual_size);
            }
        }
        to->flush();
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove(target, ec);
        throw;
    }
    result.zero_bytes = result.virtual_size - result.data_bytes;
    return result;
}

}  // namespace vireo
