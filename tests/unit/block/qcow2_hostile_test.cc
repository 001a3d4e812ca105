// Hostile images are refused with a message naming the file and the defect,
// and nothing is written to them.

#include <gtest/gtest.h>

#include <fstream>

#include "base/error.h"
#include "block/image_factory.h"
#include "block/qcow2_format.h"
#include "block/qcow2_image.h"
#include "block_test_support.h"

namespace vireo {
namespace {

using testing::ScratchDir;

std::vector<uint8_t> slurp(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spill(const std::filesystem::path& path, const std::vector<uint8_t>& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
}

template <typename T>
void poke(const std::filesystem::path& path, size_t offset, T value) {
    auto data = slurp(path);
    qcow2::store<T>(data.data() + offset, 0, value);
    spill(path, data);
}

template <typename T>
T peek(const std::filesystem::path& path, size_t offset) {
    auto data = slurp(path);
    return qcow2::load<T>(data.data() + offset, 0);
}

// Opens `path` read-write and returns the error; the file must be unchanged.
std::string refusal(const std::filesystem::path& path, OpenOptions options = {}) {
    auto before = slurp(path);
    std::string error;
    try {
        open_image(path, options);
        error = "(opened)";
    } catch (const Error& e) {
        error = e.what();
    }
    EXPECT_EQ(slurp(path), before) << "the refused image was written to";
    EXPECT_NE(error.find(path.filename().string()), std::string::npos) << error;
    return error;
}

class Qcow2Hostile : public ::testing::Test {
protected:
    // A small, valid image with data in its first cluster.
    std::filesystem::path make(const std::string& name = "h.qcow2") {
        auto path = dir_ / name;
        create_image(path, testing::qcow2_options(1 << 20, 4096));
        auto image = open_image(path);
        image->write(0, testing::pattern(1, 0, 8192));
        return path;
    }
    ScratchDir dir_;
};

TEST_F(Qcow2Hostile, BadMagic) {
    auto path = make();
    poke<uint32_t>(path, 0, 0x51464900);
    OpenOptions options;
    options.format = ImageFormat::qcow2;
    EXPECT_NE(refusal(path, options).find("bad magic"), std::string::npos);
}

TEST_F(Qcow2Hostile, TruncatedHeader) {
    auto path = make();
    auto data = slurp(path);
    data.resize(60);
    spill(path, data);
    EXPECT_NE(refusal(path).find("truncated header"), std::string::npos);
    data = slurp(make("v3.qcow2"));
    data.resize(90);  // a version 2 header's worth, not version 3's
    spill(dir_ / "v3.qcow2", data);
    EXPECT_NE(refusal(dir_ / "v3.qcow2").find("truncated header"), std::string::npos);
}

TEST_F(Qcow2Hostile, UnknownAndUnsupportedIncompatibleFeatures) {
    auto path = make();
    poke<uint64_t>(path, offsetof(qcow2::Header, incompatible_features), 1ULL << 10);
    EXPECT_NE(refusal(path).find("unknown incompatible features: bit 10"), std::string::npos);
    poke<uint64_t>(path, offsetof(qcow2::Header, incompatible_features), 1ULL << 4);
    EXPECT_NE(refusal(path).find("extended L2"), std::string::npos);
    poke<uint64_t>(path, offsetof(qcow2::Header, incompatible_features), 1ULL << 2);
    EXPECT_NE(refusal(path).find("external data file"), std::string::npos);
    poke<uint64_t>(path, offsetof(qcow2::Header, incompatible_features), 0);
    poke<uint32_t>(path, offsetof(qcow2::Header, crypt_method), 2);
    EXPECT_NE(refusal(path).find("encrypted"), std::string::npos);
    poke<uint32_t>(path, offsetof(qcow2::Header, crypt_method), 0);
    poke<uint32_t>(path, offsetof(qcow2::Header, refcount_order), 6);
    EXPECT_NE(refusal(path).find("64-bit refcounts"), std::string::npos);
}

TEST_F(Qcow2Hostile, TablesBeyondTheEndOfTheFile) {
    auto path = make();
    poke<uint64_t>(path, offsetof(qcow2::Header, l1_table_offset), 1ULL << 30);
    EXPECT_NE(refusal(path).find("L1 table at 0x40000000 (8 bytes) extends beyond the end"),
              std::string::npos);
    path = make("r.qcow2");
    poke<uint64_t>(path, offsetof(qcow2::Header, refcount_table_offset), 1ULL << 30);
    EXPECT_NE(refusal(path).find("refcount table at 0x40000000"), std::string::npos);
    path = make("l2.qcow2");
    uint64_t l1 = peek<uint64_t>(path, offsetof(qcow2::Header, l1_table_offset));
    poke<uint64_t>(path, l1, (1ULL << 40) | qcow2::kCopied);
    EXPECT_NE(refusal(path).find("L2 table 0 at 0x10000000000 lies beyond the end"),
              std::string::npos);
}

TEST_F(Qcow2Hostile, OverlappingMetadata) {
    auto path = make();
    uint64_t refcount_table = peek<uint64_t>(path, offsetof(qcow2::Header, refcount_table_offset));
    poke<uint64_t>(path, offsetof(qcow2::Header, l1_table_offset), refcount_table);
    EXPECT_NE(refusal(path).find("overlapping metadata"), std::string::npos);
    // An L2 table placed on the header.
    path = make("l2.qcow2");
    uint64_t l1 = peek<uint64_t>(path, offsetof(qcow2::Header, l1_table_offset));
    poke<uint64_t>(path, l1, qcow2::kCopied);  // offset 0 = unallocated: harmless
    EXPECT_NO_THROW(open_image(path));
    poke<uint64_t>(path, l1, l1 | qcow2::kCopied);  // the L1 table itself
    EXPECT_NE(refusal(path).find("overlapping metadata"), std::string::npos);
}

TEST_F(Qcow2Hostile, RefcountOverflowIsRefusedBeforeAnythingIsWritten) {
    auto path = make();
    // Give the first data cluster 65535 references.
    uint64_t l1 = peek<uint64_t>(path, offsetof(qcow2::Header, l1_table_offset));
    uint64_t l2 = peek<uint64_t>(path, l1) & qcow2::kOffsetMask;
    uint64_t data_cluster = (peek<uint64_t>(path, l2) & qcow2::kOffsetMask) >> 12;
    uint64_t refcount_table = peek<uint64_t>(path, offsetof(qcow2::Header, refcount_table_offset));
    uint64_t block = peek<uint64_t>(path, refcount_table);
    poke<uint16_t>(path, block + data_cluster * 2, 0xffff);
    auto before = slurp(path);
    auto image = open_image(path);
    try {
        dynamic_cast<Qcow2Image&>(*image).create_snapshot("s");
        ADD_FAILURE() << "the snapshot was taken";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("refcount overflow"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("h.qcow2"), std::string::npos) << e.what();
    }
    image.reset();
    EXPECT_EQ(slurp(path), before);
}

TEST_F(Qcow2Hostile, BackingFileLoop) {
    create_image(dir_ / "b1.qcow2", testing::qcow2_options(1 << 20));
    create_image(dir_ / "a.qcow2", testing::qcow2_options(0, 65536, "b1.qcow2"));
    create_image(dir_ / "b.qcow2", testing::qcow2_options(0, 65536, "a.qcow2"));
    // a -> b1, and b1 becomes b, whose backing file is a.
    std::filesystem::rename(dir_ / "b.qcow2", dir_ / "b1.qcow2");
    std::string error = refusal(dir_ / "a.qcow2");
    EXPECT_NE(error.find("backing-file loop"), std::string::npos) << error;
    EXPECT_NE(error.find("b1.qcow2"), std::string::npos) << error;
}

TEST_F(Qcow2Hostile, MissingBackingFile) {
    create_image(dir_ / "base.qcow2", testing::qcow2_options(1 << 20));
    create_image(dir_ / "top.qcow2", testing::qcow2_options(0, 65536, "base.qcow2"));
    std::filesystem::remove(dir_ / "base.qcow2");
    std::string error = refusal(dir_ / "top.qcow2");
    EXPECT_NE(error.find("backing file"), std::string::npos) << error;
    EXPECT_NE(error.find("base.qcow2 does not exist"), std::string::npos) << error;
}

TEST_F(Qcow2Hostile, AbsurdVirtualSize) {
    auto path = make();
    poke<uint64_t>(path, offsetof(qcow2::Header, size), 1ULL << 62);
    EXPECT_NE(refusal(path).find("absurd virtual size"), std::string::npos);
    // A size the L1 table cannot map.
    poke<uint64_t>(path, offsetof(qcow2::Header, size), 1ULL << 40);
    EXPECT_NE(refusal(path).find("too small for the virtual size"), std::string::npos);
}

TEST_F(Qcow2Hostile, CorruptBitAllowsOnlyReading) {
    auto path = make();
    poke<uint64_t>(path, offsetof(qcow2::Header, incompatible_features), qcow2::kIncompatCorrupt);
    EXPECT_NE(refusal(path).find("marked corrupt"), std::string::npos);
    auto image = open_image(path, testing::read_only());
    std::vector<uint8_t> data(8192);
    image->read(0, data);
    EXPECT_EQ(data, testing::pattern(1, 0, 8192));
    EXPECT_TRUE(image_info(path).corrupt);
}

}  // namespace
}  // namespace vireo
