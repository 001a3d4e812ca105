#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <vector>

namespace vireo {

// Data scattered over memory (guest RAM, a buffer), as a disk request carries it.

// Bytes in `buffers`.
uint64_t total_length(std::span<const iovec> buffers);
// Writes zeroes into every buffer.
void fill_zeroes(std::span<const iovec> buffers);
// The first bytes.size() bytes of `buffers` (which hold at least that many).
void copy_into(std::span<const iovec> buffers, std::span<const uint8_t> bytes);
void copy_from(std::span<const iovec> buffers, std::span<uint8_t> bytes);

// Walks `buffers` from the start, handing out the next n bytes as buffers of
// their own (a buffer may be split between two takes).
class BufferCursor {
public:
    explicit BufferCursor(std::span<const iovec> buffers) : buffers_(buffers) {}
    // Appends the next n bytes (fewer at the end) to `out`.
    void take(uint64_t n, std::vector<iovec>& out);
    std::vector<iovec> take(uint64_t n);

private:
    std::span<const iovec> buffers_;
    size_t index_ = 0;
    size_t skip_ = 0;  // bytes of buffers_[index_] already taken
};

}  // namespace vireo
