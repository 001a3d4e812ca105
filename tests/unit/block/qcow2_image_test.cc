#include "block/qcow2_image.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "block/image_factory.h"
#include "block_test_support.h"

namespace vireo {
namespace {

using testing::pattern;
using testing::ScratchDir;

constexpr uint64_t kMiB = 1 << 20;

std::vector<uint8_t> read_all(DiskImage& image, uint64_t offset, size_t length) {
    std::vector<uint8_t> out(length);
    image.read(offset, out);
    return out;
}

Qcow2Image& as_qcow2(DiskImage& image) {
    return dynamic_cast<Qcow2Image&>(image);
}

TEST(Qcow2Image, NewImageReadsAsZeroes) {
    ScratchDir dir;
    create_image(dir / "a.qcow2", testing::qcow2_options(8 * kMiB));
    auto image = open_image(dir / "a.qcow2");
    EXPECT_EQ(image->size(), 8 * kMiB);
    EXPECT_EQ(read_all(*image, 0, 65536), std::vector<uint8_t>(65536));
    EXPECT_EQ(read_all(*image, 8 * kMiB - 512, 512), std::vector<uint8_t>(512));
}

TEST(Qcow2Image, WritesReadBackAcrossClustersAndReopen) {
    ScratchDir dir;
    for (uint32_t cluster : {512u, 4096u, 65536u, 2u << 20}) {
        SCOPED_TRACE(cluster);
        auto path = dir / ("c" + std::to_string(cluster) + ".qcow2");
        create_image(path, testing::qcow2_options(16 * kMiB, cluster));
        auto expected = pattern(cluster, 0, 16 * kMiB);
        {
            auto image = open_image(path);
            // Unaligned pieces that straddle clusters, in a scattered order.
            for (uint64_t off : {3 * kMiB + 100, 0ul, 15 * kMiB + 7, 7 * kMiB - 3000}) {
                size_t len = 300000;
                len = std::min<uint64_t>(len, 16 * kMiB - off);
                image->write(off, {expected.data() + off, len});
            }
            image->flush();
        }
        auto image = open_image(path, testing::read_only());
        EXPECT_FALSE(as_qcow2(*image).was_dirty());
        for (uint64_t off : {3 * kMiB + 100, 0ul, 15 * kMiB + 7, 7 * kMiB - 3000}) {
            size_t len = std::min<uint64_t>(300000, 16 * kMiB - off);
            auto got = read_all(*image, off, len);
            EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin() + off)) << off;
        }
        EXPECT_EQ(read_all(*image, 10 * kMiB, 4096), std::vector<uint8_t>(4096));
        CheckReport report = as_qcow2(*image).check();
        EXPECT_TRUE(report.clean()) << (report.messages.empty() ? "" : report.messages[0]);
        EXPECT_EQ(report.leaks, 0u);
        EXPECT_EQ(report.corruptions, 0u);
    }
}

}  // namespace
}  // namespace vireo
