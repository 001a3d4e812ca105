// The parts of `vireo disk` below the command line: the progress bar, sizes
// for people, the benchmark's offsets and counts, the thin copy, and
// resize_image (qcow2 checked with the block layer's own check()).
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/byte_size.h"
#include "base/error.h"
#include "block/image_copy.h"
#include "block/image_factory.h"
#include "block/image_resize.h"
#include "block/qcow2_image.h"
#include "cli/disk_bench.h"
#include "cli/human_size.h"
#include "cli/progress.h"

namespace vireo::cli {
namespace {

class StorageCliTest : public testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/vireo-storage-cli-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        dir_ = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path create(const std::string& name, ImageFormat format, uint64_t size,
                                 uint32_t cluster_size = 64 * 1024) {
        CreateOptions options;
        options.format = format;
        options.size = size;
        options.cluster_size = cluster_size;
        create_image(dir_ / name, options);
        return dir_ / name;
    }
    static void fill(const std::filesystem::path& path, uint64_t offset, uint64_t length,
                     uint8_t byte) {
        std::unique_ptr<DiskImage> image = open_image(path);
        std::vector<uint8_t> data(length, byte);
        image->write(offset, data);
        image->flush();
    }
    static std::vector<uint8_t> contents(const std::filesystem::path& path) {
        OpenOptions options;
        options.read_only = true;
        std::unique_ptr<DiskImage> image = open_image(path, options);
        std::vector<uint8_t> data(image->size());
        image->read(0, data);
        return data;
    }
    static CheckReport check(const std::filesystem::path& path) {
        OpenOptions options;
        options.read_only = true;
        std::unique_ptr<DiskImage> image = open_image(path, options);
        return dynamic_cast<Qcow2Image&>(*image).check();
    }
    static std::string refusal(const std::function<void()>& action) {
        try {
            action();
        } catch (const Error& e) {
            return e.what();
        }
        ADD_FAILURE() << "not refused";
        return {};
    }

    std::filesystem::path dir_;
};

TEST(HumanSize, PicksTheLargestUnit) {
    EXPECT_EQ(human_size(0), "0 B");
    EXPECT_EQ(human_size(1023), "1023 B");
    EXPECT_EQ(human_size(1024), "1.0 KiB");
    EXPECT_EQ(human_size(1536 * KiB), "1.5 MiB");
    EXPECT_EQ(human_size(250 * GiB), "250.0 GiB");
    EXPECT_EQ(human_size(3 * 1024 * 1024 * GiB), "3.0 PiB");
}

TEST(ProgressBar, RendersTheFraction) {
    EXPECT_EQ(Progress::render("clone", 0, 4 * MiB, 60),
              "clone [" + std::string(31, '.') + "]   0%  0 B of 4.0 MiB");  // 60 columns
    std::string half = Progress::render("convert", 2 * MiB, 4 * MiB, 80);
    EXPECT_NE(half.find(" 50%  2.0 MiB of 4.0 MiB"), std::string::npos) << half;
    size_t filled = std::count(half.begin(), half.end(), '#');
    size_t empty = std::count(half.begin(), half.end(), '.') - 2;  // "2.0", "4.0"
    EXPECT_EQ(filled, empty) << half;
    std::string done = Progress::render("convert", 5 * MiB, 4 * MiB, 80);  // clamped
    EXPECT_NE(done.find("100%  4.0 MiB of 4.0 MiB"), std::string::npos) << done;
    EXPECT_EQ(done.find('.' + std::string("]")), std::string::npos) << done;
    EXPECT_NE(Progress::render("x", 0, 0, 80).find("100%"), std::string::npos);
    // Never wider than the terminal.
    EXPECT_LE(Progress::render("convert", 1, 3, 30).size(), 30u);
}

TEST(BenchOffsets, SequentialStepsAndWrapsAtTheEnd) {
    BenchOptions options;
    options.request_size = 4096;
    options.step = 8192;
    options.offset = 4096;
    BenchOffsets offsets(options, 32768);
    std::vector<uint64_t> got;
    for (int i = 0; i < 6; ++i) {
        got.push_back(offsets.next());
    }
    // 4096, 12288, 20480, 28672 (ends exactly at 32768), then 36864 % 32768.
    EXPECT_EQ(got, (std::vector<uint64_t>{4096, 12288, 20480, 28672, 4096, 12288}));

    options.step.reset();
    options.offset = 0;
    BenchOffsets unit_steps(options, 10000);  // the second request would cross the end
    EXPECT_EQ(unit_steps.next(), 0u);
    EXPECT_EQ(unit_steps.next(), 4096u);
    EXPECT_EQ(unit_steps.next(), 0u);
}

TEST(BenchOffsets, RandomIsAlignedInsideAndSeeded) {
    BenchOptions options;
    options.random = true;
    options.request_size = 4096;
    options.offset = 65536;
    options.seed = 7;
    BenchOffsets a(options, MiB);
    BenchOffsets b(options, MiB);
    std::set<uint64_t> seen;
    for (int i = 0; i < 1000; ++i) {
        uint64_t offset = a.next();
        EXPECT_EQ(offset, b.next());
        EXPECT_GE(offset, 65536u);
        EXPECT_LE(offset + 4096, MiB);
        EXPECT_EQ((offset - 65536) % 4096, 0u);
        seen.insert(offset);
    }
    EXPECT_GT(seen.size(), 200u);  // 240 slots: most of them hit
    options.seed = 8;
    BenchOffsets c(options, MiB);
    options.seed = 7;
    BenchOffsets d(options, MiB);
    int same = 0;
    for (int i = 0; i < 100; ++i) {
        same += c.next() == d.next();
    }
    EXPECT_LT(same, 10);
}

TEST_F(StorageCliTest, BenchRunsEveryRequestAtAnyDepth) {
    auto disk = create("bench.qcow2", ImageFormat::qcow2, 4 * MiB);
    for (unsigned depth : {1u, 3u, 64u}) {
        BenchOptions options;
        options.file = disk;
        options.count = 50;
        options.depth = depth;
        options.write = true;
        options.pattern = 0x42;
        options.request_size = 4096;
        options.step = 65536;
        bool started = false;
        BenchResult result = run_bench(options, [&](const BenchResult& r) {
            started = true;
            EXPECT_EQ(r.image_size, 4 * MiB);
            EXPECT_EQ(r.format, "qcow2");
        });
        EXPECT_TRUE(started);
        EXPECT_EQ(result.requests, 50u);
        EXPECT_EQ(result.bytes, 50u * 4096);
        EXPECT_GT(result.iops(), 0);
    }
    std::vector<uint8_t> data = contents(disk);
    for (uint64_t i = 0; i < 64; ++i) {
        uint8_t expected = i < 50 ? 0x42 : 0;
        EXPECT_EQ(data[i * 65536], expected) << i;
        EXPECT_EQ(data[i * 65536 + 4095], expected) << i;
        EXPECT_EQ(data[i * 65536 + 4096], 0) << i;
    }
    EXPECT_TRUE(check(disk).clean());
}

TEST_F(StorageCliTest, CopyIsThinAndExact) {
    auto source = create("source.raw", ImageFormat::raw, 8 * MiB);
    fill(source, 0, 100, 0x11);              // a granule with a little data
    fill(source, 3 * MiB, MiB + 5, 0x22);    // spills 5 bytes into the next granule
    fill(source, 8 * MiB - 512, 512, 0x33);  // the very end
    std::vector<uint64_t> reported;
    CopyOptions to_qcow2;
    to_qcow2.format = ImageFormat::qcow2;
    CopyOptions to_raw;
    to_raw.format = ImageFormat::raw;
    CopyResult result =
        copy_image(source, dir_ / "copy.qcow2", to_qcow2, [&](uint64_t done, uint64_t total) {
            EXPECT_EQ(total, 8 * MiB);
            reported.push_back(done);
        });
    EXPECT_EQ(result.virtual_size, 8 * MiB);
    // Whole clusters around the data: 1 + 17 + 1 of 64 KiB.
    EXPECT_EQ(result.data_bytes, 19 * 65536u);
    EXPECT_EQ(result.zero_bytes, 8 * MiB - result.data_bytes);
    EXPECT_EQ(contents(dir_ / "copy.qcow2"), contents(source));
    EXPECT_TRUE(check(dir_ / "copy.qcow2").clean());
    ASSERT_FALSE(reported.empty());
    EXPECT_TRUE(std::is_sorted(reported.begin(), reported.end()));
    EXPECT_EQ(reported.back(), 8 * MiB);

    // Raw targets keep 4 KiB holes.
    CopyResult raw = copy_image(dir_ / "copy.qcow2", dir_ / "copy.raw", to_raw, {});
    EXPECT_EQ(raw.data_bytes, 4096u + (MiB + 4096) + 4096u);
    EXPECT_EQ(contents(dir_ / "copy.raw"), contents(source));

    std::string why = refusal([&] { copy_image(source, dir_ / "copy.raw", to_raw, {}); });
    EXPECT_NE(why.find("copy.raw"), std::string::npos) << why;
}

TEST_F(StorageCliTest, ResizeGrowsTheL1TableWhenItMust) {
    // 512-byte clusters: one L1 cluster maps 2 MiB.
    auto disk = create("small.qcow2", ImageFormat::qcow2, MiB, 512);
    fill(disk, 0, MiB, 0x5c);
    resize_image(disk, 64 * MiB, false);
    CheckReport report = check(disk);
    EXPECT_TRUE(report.clean()) << (report.messages.empty() ? "" : report.messages.front());
    EXPECT_EQ(report.leaks, 0u);
    std::vector<uint8_t> data = contents(disk);
    ASSERT_EQ(data.size(), 64 * MiB);
    EXPECT_TRUE(std::all_of(data.begin(), data.begin() + MiB, [](uint8_t b) { return b == 0x5c; }));
    EXPECT_TRUE(std::all_of(data.begin() + MiB, data.end(), [](uint8_t b) { return b == 0; }));
    fill(disk, 63 * MiB, MiB, 0x5d);  // the new range is usable
    EXPECT_TRUE(check(disk).clean());

    // Within the table's last cluster: no new table.
    auto roomy = create("roomy.qcow2", ImageFormat::qcow2, MiB);
    resize_image(roomy, 3 * GiB, false);
    EXPECT_TRUE(check(roomy).clean());
    EXPECT_EQ(image_info(roomy).virtual_size, 3 * GiB);
}

TEST_F(StorageCliTest, ResizeShrinksOnlyWhenAllowed) {
    auto disk = create("disk.qcow2", ImageFormat::qcow2, 4 * MiB);
    fill(disk, 0, 4 * MiB, 0x7e);
    EXPECT_NE(refusal([&] { resize_image(disk, MiB, false); }).find("shrinking"),
              std::string::npos);
    EXPECT_EQ(image_info(disk).virtual_size, 4 * MiB);
    EXPECT_NE(refusal([&] { resize_image(disk, MiB + 1, true); }).find("multiple of 512"),
              std::string::npos);
    resize_image(disk, MiB + 512, true);
    EXPECT_EQ(image_info(disk).virtual_size, MiB + 512);
    EXPECT_TRUE(check(disk).clean());
    resize_image(disk, 4 * MiB, false);
    std::vector<uint8_t> data = contents(disk);
    EXPECT_TRUE(
        std::all_of(data.begin(), data.begin() + MiB + 512, [](uint8_t b) { return b == 0x7e; }));
    EXPECT_TRUE(
        std::all_of(data.begin() + MiB + 512, data.end(), [](uint8_t b) { return b == 0; }));
    EXPECT_TRUE(check(disk).clean());

    auto raw = create("disk.raw", ImageFormat::raw, MiB);
    EXPECT_NE(refusal([&] { resize_image(raw, 4096, false); }).find("shrinking"),
              std::string::npos);
    resize_image(raw, 3000, true);
    EXPECT_EQ(std::filesystem::file_size(raw), 3000u);
}

}  // namespace
}  // namespace vireo::cli
