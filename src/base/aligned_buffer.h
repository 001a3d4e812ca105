#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "base/error.h"

namespace vireo {

// A zero-filled heap buffer whose address is a multiple of a page, so that
// O_DIRECT (cache mode none) can take it whatever the device's alignment.
class AlignedBuffer {
public:
    static constexpr size_t kAlignment = 4096;

    explicit AlignedBuffer(size_t size) : size_(size) {
        size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;
        data_.reset(static_cast<uint8_t*>(std::aligned_alloc(kAlignment, rounded)));
        if (!data_) {
            fail("cannot allocate an aligned buffer of {} bytes", size);
        }
        std::fill_n(data_.get(), rounded, uint8_t{0});
    }

    uint8_t* data() { return data_.get(); }
    size_t size() const { return size_; }
    std::span<uint8_t> span() { return {data_.get(), size_}; }

private:
    struct Free {
        void operator()(uint8_t* p) const { std::free(p); }
    };
    std::unique_ptr<uint8_t, Free> data_;
    size_t size_;
};

}  // namespace vireo
