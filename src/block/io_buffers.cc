#include "block/io_buffers.h"

#include <algorithm>
#include <cstring>

namespace vireo {

uint64_t total_length(std::span<const iovec> buffers) {
    uint64_t total = 0;
    for (const iovec& buffer : buffers) {
        total += buffer.iov_len;
    }
    return total;
}

void fill_zeroes(std::span<const iovec> buffers) {
    for (const iovec& buffer : buffers) {
        std::memset(buffer.iov_base, 0, buffer.iov_len);
    }
}

void copy_into(std::span<const iovec> buffers, std::span<const uint8_t> bytes) {
    size_t done = 0;
    for (const iovec& buffer : buffers) {
        size_t n = std::min(buffer.iov_len, bytes.size() - done);
        std::memcpy(buffer.iov_base, bytes.data() + done, n);
        done += n;
        if (done == bytes.size()) {
            return;
        }
    }
}

void copy_from(std::span<const iovec> buffers, std::span<uint8_t> bytes) {
    size_t done = 0;
    for (const iovec& buffer : buffers) {
        size_t n = std::min(buffer.iov_len, bytes.size() - done);
        std::memcpy(bytes.data() + done, buffer.iov_base, n);
        done += n;
        if (done == bytes.size()) {
            return;
        }
    }
}

void BufferCursor::take(uint64_t n, std::vector<iovec>& out) {
    while (n > 0 && index_ < buffers_.size()) {
        const iovec& buffer = buffers_[index_];
        size_t piece = static_cast<size_t>(std::min<uint64_t>(buffer.iov_len - skip_, n));
        if (piece > 0) {
            out.push_back({static_cast<uint8_t*>(buffer.iov_base) + skip_, piece});
        }
        skip_ += piece;
        n -= piece;
        if (skip_ == buffer.iov_len) {
            ++index_;
            skip_ = 0;
        }
    }
}

std::vector<iovec> BufferCursor::take(uint64_t n) {
    std::vector<iovec> out;
    take(n, out);
    return out;
}

}  // namespace vireo
