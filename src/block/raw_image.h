#pragma once

#include "block/disk_image.h"
#include "block/image_file.h"

namespace vireo {

// A raw image: the file's bytes are the disk's. Sparse files give thin
// provisioning; discard and write_zeroes punch holes. Reads, writes and
// flushes go to the ring as they are; punching a hole is a plain fallocate.
class RawImage final : public DiskImage {
public:
    // `file` is open (and locked) already; the disk's size is the file's.
    RawImage(ImageFile file, bool read_only);

    uint64_t size() const override { return size_; }
    bool read_only() const override { return read_only_; }
    void submit(IoContext& context, const DiskRequest& request, DiskCompletion done) override;

    const ImageFile& file() const { return file_; }

private:
    void check_range(uint64_t offset, uint64_t length, bool writing) const;

    ImageFile file_;
    bool read_only_;
    uint64_t size_;
};

}  // namespace vireo
