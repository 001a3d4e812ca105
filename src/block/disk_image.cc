#include "block/disk_image.h"

#include <sys/uio.h>

#include "block/io_context.h"

namespace vireo {

void DiskImage::run(const DiskRequest& request) {
    IoContext::run_and_wait([&](IoContext& context, IoContext::Request& whole) {
        submit(context, request, context.part(whole));
    });
}

void DiskImage::read(uint64_t offset, std::span<uint8_t> data) {
    iovec buffer{data.data(), data.size()};
    run(DiskRequest::read(offset, {&buffer, 1}));
}

void DiskImage::write(uint64_t offset, std::span<const uint8_t> data) {
    // The image only reads the buffer; iovec has no const.
    iovec buffer{const_cast<uint8_t*>(data.data()), data.size()};
    run(DiskRequest::write(offset, {&buffer, 1}));
}

void DiskImage::write_zeroes(uint64_t offset, uint64_t length, bool may_unmap) {
    run(DiskRequest::write_zeroes(offset, length, may_unmap));
}

void DiskImage::discard(uint64_t offset, uint64_t length) {
    run(DiskRequest::discard(offset, length));
}

void DiskImage::flush() {
    run(DiskRequest::flush());
}

}  // namespace vireo
