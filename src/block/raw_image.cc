#include "block/raw_image.h"

#include "block/io_buffers.h"
#include "block/io_context.h"

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

void RawImage::submit(IoContext& context, const DiskRequest& request, DiskCompletion done) {
    IoContext::Request& pending = context.begin(std::move(done));
    try {
        switch (request.type) {
            case DiskRequest::Type::read:
                check_range(request.offset, total_length(request.buffers), false);
                context.read(pending, file_, request.offset, request.buffers);
                break;
            case DiskRequest::Type::write:
                check_range(request.offset, total_length(request.buffers), true);
                context.write(pending, file_, request.offset, request.buffers);
                break;
            case DiskRequest::Type::flush:
                if (!read_only_) {
                    context.sync(pending, file_);
                }
                break;
            case DiskRequest::Type::discard:
            case DiskRequest::Type::write_zeroes:
                // A hole reads as zeroes whether or not the caller lets us unmap.
                check_range(request.offset, request.length, true);
                file_.punch_hole(request.offset, request.length);
                break;
        }
    } catch (const IoError& error) {
        context.fail(pending, error);
    }
    context.end(pending);
}

}  // namespace vireo
