#include "block/qcow2_image.h"

#include <gtest/gtest.h>

#include <sys/uio.h>

#include <fstream>
#include <thread>

#include "base/error.h"
#include "block/image_factory.h"
#include "block/io_context.h"
#include "block/qcow2_format.h"
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

uint64_t image_info_after_flush(DiskImage& image) {
    return dynamic_cast<Qcow2Image&>(image).file().allocated_bytes();
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

TEST(Qcow2Image, SnapshotsCreateRevertAndDeleteWithinVireo) {
    ScratchDir dir;
    auto path = dir / "s.qcow2";
    create_image(path, testing::qcow2_options(4 * kMiB, 4096));
    auto v1 = pattern(1, 0, 4 * kMiB);
    auto v2 = pattern(2, 0, 4 * kMiB);
    auto image = open_image(path);
    auto& q = as_qcow2(*image);
    image->write(0, v1);
    SnapshotInfo first = q.create_snapshot("one");
    EXPECT_EQ(first.id, "1");
    EXPECT_EQ(first.disk_size, 4 * kMiB);
    EXPECT_THROW(q.create_snapshot("one"), Error);
    image->write(0, {v2.data(), 2 * kMiB});
    q.create_snapshot("two");
    image->write_zeroes(0, 4 * kMiB, true);
    EXPECT_EQ(read_all(*image, 0, 4 * kMiB), std::vector<uint8_t>(4 * kMiB));

    q.revert_to_snapshot("one");
    EXPECT_EQ(read_all(*image, 0, 4 * kMiB), v1);
    q.revert_to_snapshot("2");
    auto mixed = v1;
    std::copy_n(v2.begin(), 2 * kMiB, mixed.begin());
    EXPECT_EQ(read_all(*image, 0, 4 * kMiB), mixed);
    q.delete_snapshot("one");
    ASSERT_EQ(q.snapshots().size(), 1u);
    EXPECT_EQ(q.snapshots()[0].name, "two");
    EXPECT_THROW(q.revert_to_snapshot("one"), Error);
    EXPECT_EQ(read_all(*image, 0, 4 * kMiB), mixed);
    CheckReport report = q.check();
    EXPECT_EQ(report.leaks, 0u);
    EXPECT_EQ(report.corruptions, 0u) << (report.messages.empty() ? "" : report.messages[0]);
    q.delete_snapshot("two");
    image->write(4096, {v2.data(), kMiB});  // in place again: nothing shares the clusters any more
    report = q.check();
    EXPECT_TRUE(report.clean()) << (report.messages.empty() ? "" : report.messages[0]);
}

TEST(Qcow2Image, TinyCacheEvictsTablesWithoutLosingData) {
    ScratchDir dir;
    auto path = dir / "c.qcow2";
    create_image(path, testing::qcow2_options(32 * kMiB, 4096));
    OpenOptions options;
    options.l2_cache_bytes = 8192;  // two L2 tables at a time
    auto data = pattern(5, 0, 32 * kMiB);
    {
        auto image = open_image(path, options);
        for (uint64_t off = 0; off < 32 * kMiB; off += 3 * kMiB + 4096) {
            image->write(off, {data.data() + off, std::min<uint64_t>(200000, 32 * kMiB - off)});
        }
    }
    auto image = open_image(path, options);
    for (uint64_t off = 0; off < 32 * kMiB; off += 3 * kMiB + 4096) {
        size_t len = std::min<uint64_t>(200000, 32 * kMiB - off);
        auto got = read_all(*image, off, len);
        EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin() + off)) << off;
    }
    EXPECT_TRUE(as_qcow2(*image).check().clean());
}

TEST(Qcow2Image, LinkedCloneWritesStayInTheTop) {
    ScratchDir dir;
    create_image(dir / "base.qcow2", testing::qcow2_options(2 * kMiB, 65536));
    auto base_data = pattern(7, 0, 2 * kMiB);
    open_image(dir / "base.qcow2")->write(0, base_data);
    create_image(dir / "clone.qcow2", testing::qcow2_options(0, 4096, "base.qcow2"));
    auto clone = open_image(dir / "clone.qcow2");
    EXPECT_EQ(clone->size(), 2 * kMiB);
    // A small write in the middle of a backing cluster copies the rest of it.
    auto small = pattern(8, 100000, 10);
    clone->write(100000, small);
    clone->discard(65536, 4096);
    auto expected = base_data;
    std::copy(small.begin(), small.end(), expected.begin() + 100000);
    std::fill_n(expected.begin() + 65536, 4096, 0);  // discard over a backing file: zeroes
    EXPECT_EQ(read_all(*clone, 0, 2 * kMiB), expected);
    clone.reset();
    EXPECT_EQ(read_all(*open_image(dir / "base.qcow2", testing::read_only()), 0, 2 * kMiB),
              base_data);
    ImageInfo info = image_info(dir / "clone.qcow2");
    EXPECT_EQ(info.cluster_size, 4096u);
    ASSERT_EQ(info.backing_chain.size(), 1u);
    EXPECT_EQ(info.backing_format, ImageFormat::qcow2);
    EXPECT_LT(info.actual_size, 256 * 1024u);  // thin: only the clone's own clusters
}

TEST(Qcow2Image, DiscardFreesSpaceAndWriteZeroesReadsZeroes) {
    ScratchDir dir;
    auto path = dir / "d.qcow2";
    create_image(path, testing::qcow2_options(16 * kMiB));
    auto image = open_image(path);
    image->write(0, pattern(9, 0, 16 * kMiB));
    image->flush();
    uint64_t full = image_info_after_flush(*image);
    image->discard(0, 8 * kMiB);
    image->write_zeroes(8 * kMiB, 4 * kMiB, false);  // keeps its clusters
    image->flush();
    EXPECT_EQ(read_all(*image, 0, 12 * kMiB), std::vector<uint8_t>(12 * kMiB));
    EXPECT_LE(image_info_after_flush(*image), full - 7 * kMiB);
    image->write(8 * kMiB + 5, pattern(3, 0, 10));
    auto got = read_all(*image, 8 * kMiB, 20);
    EXPECT_EQ(got[4], 0);
    EXPECT_EQ(got[5], pattern(3, 0, 10)[0]);
    EXPECT_TRUE(as_qcow2(*image).check().clean());
}

TEST(Qcow2Image, ConcurrentRequestsFromSeveralThreads) {
    ScratchDir dir;
    auto path = dir / "t.qcow2";
    create_image(path, testing::qcow2_options(16 * kMiB, 4096));
    auto image = open_image(path);
    std::vector<std::thread> threads;
    for (uint64_t t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            // Each thread owns every fourth 64 KiB range: its first round allocates,
            // its second writes in place, while the others allocate theirs.
            for (uint64_t round = 0; round < 2; ++round) {
                for (uint64_t off = t * 65536; off < 16 * kMiB; off += 4 * 65536) {
                    image->write(off, pattern(t + round, off, 65536));
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    for (uint64_t t = 0; t < 4; ++t) {
        for (uint64_t off = t * 65536; off < 16 * kMiB; off += 4 * 65536) {
            ASSERT_EQ(read_all(*image, off, 65536), pattern(t + 1, off, 65536)) << off;
        }
    }
    EXPECT_TRUE(as_qcow2(*image).check().clean());
}

TEST(Qcow2Image, ConcurrentWritesIntoOneNewClusterKeepEveryPiece) {
    // Eight threads write disjoint 4 KiB pieces of the same 64 KiB clusters of
    // a linked clone at once: each piece's allocation copies the rest of the
    // cluster from the backing file, so a write that did not wait for another
    // one filling its cluster would lose that one's piece.
    ScratchDir dir;
    create_image(dir / "base.qcow2", testing::qcow2_options(4 * kMiB));
    auto base_data = pattern(21, 0, 4 * kMiB);
    open_image(dir / "base.qcow2")->write(0, base_data);
    create_image(dir / "top.qcow2", testing::qcow2_options(0, 65536, "base.qcow2"));
    constexpr uint64_t kThreads = 8;
    constexpr uint64_t kPiece = 4096;
    auto expected = base_data;
    {
        auto image = open_image(dir / "top.qcow2");
        std::vector<std::thread> threads;
        for (uint64_t t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                for (uint64_t cluster = 0; cluster < 4 * kMiB; cluster += 65536) {
                    uint64_t off = cluster + t * kPiece * 2;
                    image->write(off, pattern(100 + t, off, kPiece));
                }
            });
        }
        for (auto& thread : threads) {
            thread.join();
        }
        image->flush();
    }
    for (uint64_t t = 0; t < kThreads; ++t) {
        for (uint64_t cluster = 0; cluster < 4 * kMiB; cluster += 65536) {
            uint64_t off = cluster + t * kPiece * 2;
            auto piece = pattern(100 + t, off, kPiece);
            std::copy(piece.begin(), piece.end(), expected.begin() + static_cast<ptrdiff_t>(off));
        }
    }
    auto image = open_image(dir / "top.qcow2", testing::read_only());
    EXPECT_EQ(read_all(*image, 0, 4 * kMiB), expected);
    CheckReport report = as_qcow2(*image).check();
    EXPECT_TRUE(report.clean()) << (report.messages.empty() ? "" : report.messages[0]);
    EXPECT_EQ(report.leaks, 0u);
}

TEST(Qcow2Image, AllocatingWritesInFlightTogetherOnOneContextKeepEveryPiece) {
    // A guest's queue at depth: 4 KiB writes into the same new clusters of a
    // linked clone, all in flight at once on one context. Each allocation
    // copies the rest of its cluster from the backing file, so a write must
    // wait (parked, on the same thread) for the one filling its cluster. A
    // long write whose first cluster is being filled waits whole, and its
    // middle cluster is allocated with no copy.
    ScratchDir dir;
    create_image(dir / "base.qcow2", testing::qcow2_options(4 * kMiB));
    auto base_data = pattern(31, 0, 4 * kMiB);
    open_image(dir / "base.qcow2")->write(0, base_data);
    create_image(dir / "top.qcow2", testing::qcow2_options(0, 65536, "base.qcow2"));
    constexpr uint64_t kPiece = 4096;
    struct Write {
        uint64_t offset;
        std::vector<uint8_t> data;
        iovec buffer;
    };
    std::vector<Write> writes;
    for (uint64_t t = 0; t < 8; ++t) {
        for (uint64_t cluster = 0; cluster < 32; ++cluster) {
            uint64_t offset = cluster * 65536 + t * kPiece * 2;
            writes.push_back({offset, pattern(200 + t, offset, kPiece), {}});
        }
    }
    uint64_t long_offset = 40 * 65536 + 32768;
    writes.push_back({40 * 65536, pattern(300, 0, kPiece), {}});
    writes.push_back({42 * 65536 + 61440, pattern(301, 0, kPiece), {}});
    writes.push_back({long_offset, pattern(302, 0, 2 * 65536), {}});
    auto expected = base_data;
    for (Write& write : writes) {
        write.buffer = {write.data.data(), write.data.size()};
        std::copy(write.data.begin(), write.data.end(),
                  expected.begin() + static_cast<ptrdiff_t>(write.offset));
    }
    {
        auto image = open_image(dir / "top.qcow2");
        IoContext context;
        size_t completed = 0;
        for (const Write& write : writes) {
            image->submit(context, DiskRequest::write(write.offset, {&write.buffer, 1}),
                          [&](const IoError* failure) {
                              EXPECT_EQ(failure, nullptr) << (failure ? failure->what() : "");
                              ++completed;
                          });
        }
        context.drain();
        EXPECT_EQ(completed, writes.size());
        image->flush();
    }
    auto image = open_image(dir / "top.qcow2", testing::read_only());
    EXPECT_TRUE(read_all(*image, 0, 4 * kMiB) == expected);
    CheckReport report = as_qcow2(*image).check();
    EXPECT_TRUE(report.clean()) << (report.messages.empty() ? "" : report.messages[0]);
    EXPECT_EQ(report.leaks, 0u);
}

TEST(Qcow2Image, LongWritesOnSmallClustersAllocateInSeveralRuns) {
    // A refcount block of 512-byte clusters counts 256 clusters, so a 1 MiB
    // write into a new image needs more than one contiguous allocation.
    ScratchDir dir;
    auto path = dir / "small.qcow2";
    create_image(path, testing::qcow2_options(4 * kMiB, 512));
    auto data = pattern(5, 0, 3 * kMiB);
    {
        auto image = open_image(path);
        image->write(1000, data);
    }
    auto image = open_image(path, testing::read_only());
    EXPECT_EQ(read_all(*image, 1000, 3 * kMiB), data);
    EXPECT_EQ(read_all(*image, 0, 1000), std::vector<uint8_t>(1000));
    EXPECT_TRUE(as_qcow2(*image).check().clean());
}

TEST(Qcow2Image, AllocatingWritesGrowTheFileAStepAheadOfItsClusters) {
    // Each new cluster used to extend the file by itself (a blocking
    // fallocate per allocating write); the file now grows by a quarter of its
    // length (up to 1 MiB) at a time, and stays as thin as that.
    ScratchDir dir;
    auto path = dir / "grow.qcow2";
    create_image(path, testing::qcow2_options(64 * kMiB));
    constexpr uint64_t kWrites = 48;
    std::vector<std::vector<uint8_t>> written;
    int growths = 0;
    {
        auto image = open_image(path);
        uint64_t size = std::filesystem::file_size(path);
        for (uint64_t k = 0; k < kWrites; ++k) {
            written.push_back(pattern(k, 0, 4096));
            image->write(k * kMiB + 512, written.back());  // a cluster of its own each
            uint64_t now = std::filesystem::file_size(path);
            growths += now != size;
            size = now;
        }
        EXPECT_LE(growths, static_cast<int>(kWrites / 4));
        // The 48 clusters, an L2 table and the image's first four, and a step.
        EXPECT_LE(size, (kWrites + 5) * 65536 * 5 / 4 + 65536);
    }
    auto image = open_image(path, testing::read_only());
    EXPECT_TRUE(as_qcow2(*image).check().clean());
    for (uint64_t k = 0; k < kWrites; ++k) {
        EXPECT_EQ(read_all(*image, k * kMiB + 512, 4096), written[k]) << "write " << k;
    }
}

TEST(Qcow2Image, ScatteredRequestsInFlightTogetherOnOneContext) {
    // As a guest's disk sends them: reads and writes, each over many small
    // buffers, all in flight at once; an allocating write of 9 MiB from an
    // unaligned offset, and overwrites in place.
    ScratchDir dir;
    auto path = dir / "scatter.qcow2";
    create_image(path, testing::qcow2_options(16 * kMiB));
    auto image = open_image(path);
    auto data = pattern(9, 0, 9 * kMiB);
    auto scatter = [](std::vector<uint8_t>& bytes, size_t piece) {
        std::vector<iovec> buffers;
        for (size_t at = 0; at < bytes.size(); at += piece) {
            buffers.push_back({bytes.data() + at, std::min(piece, bytes.size() - at)});
        }
        return buffers;
    };
    auto buffers = scatter(data, 4096 + 512);
    IoContext context;
    int completed = 0;
    auto done = [&](const IoError* failure) {
        EXPECT_EQ(failure, nullptr) << (failure ? failure->what() : "");
        ++completed;
    };
    image->submit(context, DiskRequest::write(3 * kMiB + 1536, buffers), done);
    context.drain();

    auto overwrite = pattern(10, 0, 1 * kMiB);
    auto overwrite_buffers = scatter(overwrite, 512);
    std::vector<uint8_t> first(2 * kMiB), second(2 * kMiB);
    auto first_buffers = scatter(first, 65536);
    auto second_buffers = scatter(second, 1000);
    image->submit(context, DiskRequest::read(2 * kMiB, first_buffers), done);
    image->submit(context, DiskRequest::write(8 * kMiB, overwrite_buffers), done);
    image->submit(context, DiskRequest::read(11 * kMiB, second_buffers), done);
    image->submit(context, DiskRequest::flush(), done);
    context.drain();
    EXPECT_EQ(completed, 5);

    std::vector<uint8_t> expected(16 * kMiB);
    std::copy(data.begin(), data.end(), expected.begin() + 3 * kMiB + 1536);
    EXPECT_TRUE(std::equal(first.begin(), first.end(), expected.begin() + 2 * kMiB));
    EXPECT_TRUE(std::equal(second.begin(), second.end(), expected.begin() + 11 * kMiB));
    std::copy(overwrite.begin(), overwrite.end(), expected.begin() + 8 * kMiB);
    EXPECT_TRUE(read_all(*image, 0, 16 * kMiB) == expected);
    EXPECT_TRUE(as_qcow2(*image).check().clean());
}

TEST(Qcow2Image, CheckFindsAndRepairsLeaks) {
    ScratchDir dir;
    auto path = dir / "l.qcow2";
    create_image(path, testing::qcow2_options(1 * kMiB, 4096));
    {
        auto image = open_image(path);
        image->write(0, pattern(1, 0, 8192));
    }
    // One more cluster at the end of the file, counted but used by nothing.
    uint64_t end = std::filesystem::file_size(path);
    std::filesystem::resize_file(path, end + 4096);
    {
        std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
        uint8_t be[8];
        file.seekg(offsetof(qcow2::Header, refcount_table_offset));
        file.read(reinterpret_cast<char*>(be), 8);
        uint64_t table = qcow2::load<uint64_t>(be, 0);
        file.seekg(static_cast<std::streamoff>(table));
        file.read(reinterpret_cast<char*>(be), 8);
        uint64_t block = qcow2::load<uint64_t>(be, 0);
        qcow2::store<uint16_t>(be, 0, 1);
        file.seekp(static_cast<std::streamoff>(block + end / 4096 * 2));
        file.write(reinterpret_cast<char*>(be), 2);
    }
    auto image = open_image(path);
    auto& q = as_qcow2(*image);
    CheckReport report = q.check();
    EXPECT_EQ(report.leaks, 1u);
    EXPECT_EQ(report.corruptions, 0u);
    EXPECT_FALSE(report.clean());
    report = q.check(CheckRepair::leaks);
    EXPECT_EQ(report.leaks_fixed, 1u);
    EXPECT_TRUE(report.clean());
    EXPECT_TRUE(q.check().clean());
    EXPECT_EQ(read_all(*image, 0, 8192), pattern(1, 0, 8192));
}

}  // namespace
}  // namespace vireo
