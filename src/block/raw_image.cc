#include "block/raw_image.h"

namespace vireo {

RawImage::RawImage(ImageFile file, bool read_only)
    : file_(std::move(file)), read_only_(read_only), size_(file_.size()) {}

void RawImage::check_range(uint64_t offset, uint64_t length, bool writing) const {
    if (offset > size_ || length > size_ - offset) {
        throw IoError(fmt::format("disk {}: range {:#x}+{:#x} lies beyond the disk's {} bytes",
                                  file_.path().string(), offset, length, size_));
    }
    if (writing && read_only_) {
        throw IoError(fmt::format("disk {}: opened read-only", file_.path().string()));
    }
}

void RawImage::read(uint64_t offset, std::span<uint8_t> data) {
    check_range(offset, data.size(), false);
    FileRead piece{offset, data};
    file_.read_batch({&piece, 1});
}

void RawImage::write(uint64_t offset, std::span<const uint8_t> data) {
    check_range(offset, data.size(), true);
    FileWrite piece{offset, data};
    file_.write_batch({&piece, 1});
}

void RawImage::write_zeroes(uint64_t offset, uint64_t length, bool) {
    check_range(offset, length, true);
    // A hole reads as zeroes whether or not the caller lets us unmap.
    file_.punch_hole(offset, length);
}

void RawImage::discard(uint64_t offset, uint64_t length) {
    check_range(offset, length, true);
    file_.punch_hole(offset, length);
}

void RawImage::flush() {
    if (!read_only_) {
        file_.sync();
    }
}

}  // namespace vireo
