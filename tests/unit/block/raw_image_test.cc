#include "block/raw_image.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include "base/error.h"
#include "block/image_factory.h"
#include "block_test_support.h"

namespace vireo {
namespace {

using testing::pattern;
using testing::ScratchDir;

TEST(RawImage, CreatesSparseAndReadsBackWrites) {
    ScratchDir dir;
    CreateOptions options;
    options.format = ImageFormat::raw;
    options.size = 4 << 20;
    create_image(dir / "r.img", options);
    EXPECT_EQ(probe_format(dir / "r.img"), ImageFormat::raw);
    {
        auto image = open_image(dir / "r.img");
        EXPECT_EQ(image->size(), 4u << 20);
        auto data = pattern(1, 1000, 70000);
        image->write(1000, data);
        std::vector<uint8_t> back(70000);
        image->read(1000, back);
        EXPECT_EQ(back, data);
        image->flush();
        EXPECT_THROW(image->write((4 << 20) - 10, data), IoError);
    }
    ImageInfo info = image_info(dir / "r.img");
    EXPECT_EQ(info.format, ImageFormat::raw);
    EXPECT_EQ(info.virtual_size, 4u << 20);
    EXPECT_LT(info.actual_size, 1u << 20);  // thin: only what was written takes space
}

TEST(RawImage, DiscardAndWriteZeroesReadAsZeroesAndFreeSpace) {
    ScratchDir dir;
    CreateOptions options;
    options.format = ImageFormat::raw;
    options.size = 8 << 20;
    create_image(dir / "r.img", options);
    auto image = open_image(dir / "r.img");
    auto data = pattern(2, 0, 8 << 20);
    image->write(0, data);
    image->flush();
    uint64_t full = dynamic_cast<RawImage&>(*image).file().allocated_bytes();
    image->discard(1 << 20, 2 << 20);
    image->write_zeroes(4 << 20, 1 << 20, false);
    std::vector<uint8_t> back(8 << 20);
    image->read(0, back);
    std::fill_n(data.begin() + (1 << 20), 2 << 20, 0);
    std::fill_n(data.begin() + (4 << 20), 1 << 20, 0);
    EXPECT_EQ(back, data);
    EXPECT_LE(dynamic_cast<RawImage&>(*image).file().allocated_bytes(), full - (3 << 20));
}

TEST(RawImage, ReadOnlyRefusesWrites) {
    ScratchDir dir;
    CreateOptions options;
    options.format = ImageFormat::raw;
    options.size = 1 << 20;
    create_image(dir / "r.img", options);
    auto image = open_image(dir / "r.img", testing::read_only());
    std::vector<uint8_t> data(512);
    EXPECT_THROW(image->write(0, data), IoError);
    EXPECT_TRUE(image->read_only());
}

}  // namespace
}  // namespace vireo
