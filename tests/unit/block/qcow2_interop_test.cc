// Interoperability with QEMU: qemu-img is the oracle. Images qemu-img makes
// read byte-identical through Vireo; images Vireo writes pass `qemu-img check`
// and equal a raw reference under `qemu-img compare`.

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "block/image_factory.h"
#include "block/qcow2_image.h"
#include "block_test_support.h"

namespace vireo {
namespace {

using testing::pattern;
using testing::qemu_img;
using testing::quoted;
using testing::ScratchDir;

constexpr uint64_t kMiB = 1 << 20;

void write_file(const std::filesystem::path& path, const std::vector<uint8_t>& data) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
}

std::vector<uint8_t> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> read_whole(DiskImage& image) {
    std::vector<uint8_t> out(image.size());
    image.read(0, out);
    return out;
}

// A disk with data here and there, holes, and a tail of zeroes.
std::vector<uint8_t> sample_disk(uint64_t size, uint64_t seed) {
    std::vector<uint8_t> disk(size);
    std::mt19937_64 random(seed);
    for (int i = 0; i < 40; ++i) {
        uint64_t offset = random() % size;
        uint64_t length = std::min<uint64_t>(random() % (256 * 1024) + 1, size - offset);
        auto data = pattern(random(), offset, length);
        std::copy(data.begin(), data.end(), disk.begin() + static_cast<ptrdiff_t>(offset));
    }
    return disk;
}

void expect_qemu_check_clean(const std::filesystem::path& image) {
    std::string out = qemu_img("check " + quoted(image));
    EXPECT_NE(out.find("No errors were found"), std::string::npos) << out;
}

void expect_identical(const std::filesystem::path& image, const std::filesystem::path& raw) {
    std::string out = qemu_img("compare -f qcow2 -F raw " + quoted(image) + " " + quoted(raw));
    EXPECT_NE(out.find("Images are identical"), std::string::npos) << out;
}

// Applies a random mix of writes, zeroing and discards to `image` and `model`.
void random_workload(DiskImage& image, std::vector<uint8_t>& model, uint64_t seed, int ops) {
    std::mt19937_64 random(seed);
    uint64_t size = model.size();
    for (int i = 0; i < ops; ++i) {
        uint64_t offset = random() % size;
        uint64_t length = std::min<uint64_t>(random() % (200 * 1024) + 1, size - offset);
        switch (random() % 8) {
            case 0: {
                bool unmap = random() % 2;
                image.write_zeroes(offset, length, unmap);
                std::fill_n(model.begin() + static_cast<ptrdiff_t>(offset), length, 0);
                break;
            }
            case 1: {
                // Discard leaves contents undefined: read back what the image says.
                image.discard(offset, length);
                image.read(offset, {model.data() + offset, length});
                break;
            }
            default: {
                auto data = pattern(random(), offset, length);
                image.write(offset, data);
                std::copy(data.begin(), data.end(), model.begin() + static_cast<ptrdiff_t>(offset));
            }
        }
        if (i % 50 == 49) {
            image.flush();
        }
    }
}

TEST(Qcow2Interop, QemuMadeImagesReadIdentical) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    auto disk = sample_disk(24 * kMiB + 4096, 1);
    write_file(dir / "ref.raw", disk);
    for (const char* cluster : {"4k", "64k", "2M"}) {
        for (bool compressed : {false, true}) {
            SCOPED_TRACE(std::string(cluster) + (compressed ? " compressed" : ""));
            auto path = dir / (std::string(cluster) + (compressed ? "c" : "") + ".qcow2");
            qemu_img(std::string("convert -f raw -O qcow2 ") + (compressed ? "-c " : "") +
                     "-o cluster_size=" + cluster + " " + quoted(dir / "ref.raw") + " " +
                     quoted(path));
            auto image = open_image(path, testing::read_only());
            EXPECT_EQ(read_whole(*image), disk);
            EXPECT_TRUE(dynamic_cast<Qcow2Image&>(*image).check().clean());
        }
    }
}

TEST(Qcow2Interop, WritesOverCompressedClustersAllocateNormalOnes) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    auto disk = sample_disk(4 * kMiB, 5);
    write_file(dir / "ref.raw", disk);
    auto path = dir / "c.qcow2";
    qemu_img("convert -c -f raw -O qcow2 -o cluster_size=4k " + quoted(dir / "ref.raw") + " " +
             quoted(path));
    {
        auto image = open_image(path);
        random_workload(*image, disk, 21, 120);
    }
    write_file(dir / "model.raw", disk);
    expect_qemu_check_clean(path);
    expect_identical(path, dir / "model.raw");
}

TEST(Qcow2Interop, QemuMadeBackingChainReadsIdentical) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    write_file(dir / "base.raw", sample_disk(8 * kMiB, 2));
    qemu_img("convert -f raw -O qcow2 -o cluster_size=4k " + quoted(dir / "base.raw") + " " +
             quoted(dir / "base.qcow2"));
    qemu_img("create -f qcow2 -o cluster_size=64k -b base.qcow2 -F qcow2 " +
             quoted(dir / "mid.qcow2"));
    testing::run_command("qemu-io -c 'write -P 0x5a 1M 100k' -c 'write -z 3M 64k' " +
                         quoted(dir / "mid.qcow2"));
    // The top is larger than its backing file: reads past it are zeroes.
    qemu_img("create -f qcow2 -b mid.qcow2 -F qcow2 " + quoted(dir / "top.qcow2") + " 12M");
    testing::run_command("qemu-io -c 'write -P 0xc3 1000k 8k' -c 'write -P 0x11 9M 4k' " +
                         quoted(dir / "top.qcow2"));
    qemu_img("convert -O raw " + quoted(dir / "top.qcow2") + " " + quoted(dir / "top.raw"));

    auto image = open_image(dir / "top.qcow2", testing::read_only());
    EXPECT_EQ(read_whole(*image), read_file(dir / "top.raw"));
    ImageInfo info = image_info(dir / "top.qcow2");
    ASSERT_EQ(info.backing_chain.size(), 2u);
    EXPECT_EQ(info.backing_chain[0].filename(), "mid.qcow2");
    EXPECT_EQ(info.backing_chain[1].filename(), "base.qcow2");
    EXPECT_EQ(info.virtual_size, 12 * kMiB);
}

TEST(Qcow2Interop, VireoWrittenImagesPassQemuCheckAndCompare) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    for (uint32_t cluster : {512u, 4096u, 65536u, 2u << 20}) {
        SCOPED_TRACE(cluster);
        auto path = dir / ("v" + std::to_string(cluster) + ".qcow2");
        uint64_t size = 20 * kMiB + 512;
        create_image(path, testing::qcow2_options(size, cluster));
        std::vector<uint8_t> model(size);
        {
            auto image = open_image(path);
            random_workload(*image, model, cluster, 300);
            EXPECT_TRUE(read_whole(*image) == model) << "before close";
        }
        {
            auto image = open_image(path, testing::read_only());
            EXPECT_TRUE(read_whole(*image) == model) << "after reopening";
        }
        write_file(dir / "model.raw", model);
        expect_qemu_check_clean(path);
        expect_identical(path, dir / "model.raw");
    }
}

TEST(Qcow2Interop, VireoBackingChainIsWhatQemuReads) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    auto base_data = sample_disk(8 * kMiB, 3);
    write_file(dir / "base.raw", base_data);
    create_image(dir / "mid.qcow2", testing::qcow2_options(0, 4096, "base.raw", ImageFormat::raw));
    std::vector<uint8_t> model = base_data;
    {
        auto mid = open_image(dir / "mid.qcow2");
        random_workload(*mid, model, 7, 100);
    }
    // A linked clone of the clone; its writes never reach mid.qcow2.
    create_image(dir / "top.qcow2", testing::qcow2_options(0, 65536, "mid.qcow2"));
    auto mid_model = model;
    {
        auto top = open_image(dir / "top.qcow2");
        random_workload(*top, model, 8, 100);
    }
    write_file(dir / "mid.raw", mid_model);
    write_file(dir / "top.raw", model);
    expect_qemu_check_clean(dir / "mid.qcow2");
    expect_qemu_check_clean(dir / "top.qcow2");
    expect_identical(dir / "mid.qcow2", dir / "mid.raw");
    expect_identical(dir / "top.qcow2", dir / "top.raw");
    std::string info = qemu_img("info " + quoted(dir / "top.qcow2"));
    EXPECT_NE(info.find("backing file: mid.qcow2"), std::string::npos) << info;
    EXPECT_NE(info.find("backing file format: qcow2"), std::string::npos) << info;
}

TEST(Qcow2Interop, SnapshotsVireoMakesQemuListsAndReverts) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    auto path = dir / "s.qcow2";
    create_image(path, testing::qcow2_options(6 * kMiB, 4096));
    std::vector<uint8_t> model(6 * kMiB);
    std::vector<uint8_t> at_first;
    {
        auto image = open_image(path);
        auto& q = dynamic_cast<Qcow2Image&>(*image);
        random_workload(*image, model, 11, 60);
        at_first = model;
        q.create_snapshot("first");
        random_workload(*image, model, 12, 60);
        q.create_snapshot("second");
        random_workload(*image, model, 13, 60);
    }
    expect_qemu_check_clean(path);
    write_file(dir / "now.raw", model);
    expect_identical(path, dir / "now.raw");
    std::string list = qemu_img("snapshot -l " + quoted(path));
    EXPECT_NE(list.find("first"), std::string::npos) << list;
    EXPECT_NE(list.find("second"), std::string::npos) << list;
    qemu_img("snapshot -a first " + quoted(path));
    write_file(dir / "first.raw", at_first);
    expect_identical(path, dir / "first.raw");
    expect_qemu_check_clean(path);
    // And Vireo deletes what it made; QEMU still finds the image clean.
    {
        auto image = open_image(path);
        dynamic_cast<Qcow2Image&>(*image).delete_snapshot("second");
        dynamic_cast<Qcow2Image&>(*image).delete_snapshot("1");
    }
    expect_qemu_check_clean(path);
    expect_identical(path, dir / "first.raw");
    EXPECT_EQ(qemu_img("snapshot -l " + quoted(path)).find("second"), std::string::npos);
}

TEST(Qcow2Interop, VireoRevertsToSnapshotsQemuMade) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    auto original = sample_disk(4 * kMiB, 4);
    write_file(dir / "orig.raw", original);
    auto path = dir / "q.qcow2";
    qemu_img("convert -f raw -O qcow2 " + quoted(dir / "orig.raw") + " " + quoted(path));
    qemu_img("snapshot -c before " + quoted(path));
    testing::run_command("qemu-io -c 'write -P 0x77 0 2M' -c 'discard 2M 1M' " + quoted(path));
    {
        auto image = open_image(path);
        auto& q = dynamic_cast<Qcow2Image&>(*image);
        auto snapshots = q.snapshots();
        ASSERT_EQ(snapshots.size(), 1u);
        EXPECT_EQ(snapshots[0].name, "before");
        EXPECT_EQ(snapshots[0].disk_size, 4 * kMiB);
        q.revert_to_snapshot("before");
        EXPECT_EQ(read_whole(*image), original);
        // Writes after the revert must not reach the snapshot.
        auto data = pattern(99, 0, 100000);
        image->write(5000, data);
    }
    expect_qemu_check_clean(path);
    qemu_img("snapshot -a before " + quoted(path));
    expect_identical(path, dir / "orig.raw");
}

}  // namespace
}  // namespace vireo
