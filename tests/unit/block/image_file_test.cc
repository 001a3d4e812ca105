#include "block/image_file.h"

#include <gtest/gtest.h>

#include <vector>

#include "block_test_support.h"

namespace vireo {
namespace {

using testing::pattern;
using testing::ScratchDir;

TEST(ImageFile, ZeroRangeClearsDataAndGrowsTheFile) {
    ScratchDir dir;
    ImageFile file = ImageFile::create(dir / "f");
    auto data = pattern(7, 0, 3 * 4096);
    file.write(0, data);

    file.zero_range(4096, 4096);
    std::vector<uint8_t> back(data.size());
    file.read(0, back);
    std::vector<uint8_t> expected = data;
    std::fill_n(expected.begin() + 4096, 4096, 0);
    EXPECT_EQ(back, expected);

    // Past the end: the file grows to cover the range, which reads as zeroes.
    file.zero_range(1 << 20, 65536);
    EXPECT_EQ(file.size(), (1u << 20) + 65536);
    std::vector<uint8_t> tail(65536, 0xff);
    file.read(1 << 20, tail);
    EXPECT_EQ(tail, std::vector<uint8_t>(65536, 0));
}

}  // namespace
}  // namespace vireo
