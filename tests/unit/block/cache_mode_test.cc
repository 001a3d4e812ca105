// Cache mode none: guest data through O_DIRECT where its buffer, offset and
// length allow, through the page cache otherwise. Images opened that way hold
// and read exactly what writeback gives (qemu-img compare is the oracle), and
// a file system without O_DIRECT is refused with a message that says so.

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "block/image_factory.h"
#include "block/image_file.h"
#include "block/qcow2_image.h"
#include "block/raw_image.h"
#include "block_test_support.h"

namespace vireo {
namespace {

using testing::pattern;
using testing::qemu_img;
using testing::quoted;
using testing::ScratchDir;

constexpr uint64_t kDiskSize = 16 << 20;

// `length` bytes at `misalign` bytes past a 4 KiB boundary.
class Buffer {
public:
    Buffer(size_t length, size_t misalign)
        : storage_(length + misalign + 4096),
          data_(storage_.data() + (4096 - reinterpret_cast<uintptr_t>(storage_.data()) % 4096) +
                    misalign,
                length) {}
    std::span<uint8_t> span() { return data_; }

private:
    std::vector<uint8_t> storage_;
    std::span<uint8_t> data_;
};

struct Request {
    uint64_t offset;
    size_t length;
    size_t misalign;  // of the buffer
};

// Direct and page-cache pieces, single (pread/pwrite) and batched (io_uring,
// over 4 MiB); they overlap, so later ones rewrite data earlier ones placed.
const std::vector<Request> kRequests = {
    {0, 4096, 0},                                 // aligned
    {65536, 3 * 65536, 0},                        // aligned, several clusters
    {1000, 3000, 0},                              // offset and length unaligned
    {8192, 4096, 1},                              // buffer unaligned
    {12288 - 512, 1024, 512},                     // sector-aligned only
    {1 << 20, 5 << 20, 0},                        // batched, aligned
    {(1 << 20) + 700, (5 << 20) + 100, 0},        // batched, unaligned
    {(12 << 20) - 4096, 8192, 0},                 // across the backing file's data end
    {kDiskSize - 65536 - 3, 65536 + 3, 4096},     // unaligned, up to the end of the disk
    {kDiskSize - (4 << 20) - 65536, 4 << 20, 0},  // batch of exactly 4 MiB
};

// Writes every request (pattern `seed`) through `image` and into `reference`,
// then reads each one and the whole disk back through `image`.
void exercise(DiskImage& image, std::vector<uint8_t>& reference, uint64_t seed) {
    for (const Request& r : kRequests) {
        Buffer buffer(r.length, r.misalign);
        auto data = pattern(seed, r.offset, r.length);
        std::copy(data.begin(), data.end(), buffer.span().begin());
        image.write(r.offset, buffer.span());
        std::copy(data.begin(), data.end(), reference.begin() + static_cast<ptrdiff_t>(r.offset));
    }
    for (const Request& r : kRequests) {
        Buffer buffer(r.length, r.misalign);
        std::fill(buffer.span().begin(), buffer.span().end(), 0xee);
        image.read(r.offset, buffer.span());
        ASSERT_TRUE(std::equal(buffer.span().begin(), buffer.span().end(),
                               reference.begin() + static_cast<ptrdiff_t>(r.offset)))
            << "request at " << r.offset << " of " << r.length << " bytes";
    }
    Buffer whole(kDiskSize, 0);
    image.read(0, whole.span());
    ASSERT_TRUE(std::equal(whole.span().begin(), whole.span().end(), reference.begin()));
    image.flush();
}

// A raw file of kDiskSize bytes: 12 MiB of pattern, the rest a hole.
// Returns its contents.
std::vector<uint8_t> write_base_raw(const std::filesystem::path& path) {
    std::vector<uint8_t> contents(kDiskSize, 0);
    auto data = pattern(1, 0, 12 << 20);
    std::copy(data.begin(), data.end(), contents.begin());
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(data.data()),
                  static_cast<std::streamsize>(data.size()));
    }
    std::filesystem::resize_file(path, kDiskSize);
    return contents;
}

OpenOptions with_cache(CacheMode cache) {
    OpenOptions options;
    options.cache = cache;
    return options;
}

TEST(CacheModeNone, RawReadsAndWritesWhatWritebackDoes) {
    ScratchDir dir;
    std::vector<uint8_t> reference = write_base_raw(dir / "base.raw");
    for (const char* name : {"none.raw", "writeback.raw"}) {
        std::filesystem::copy_file(dir / "base.raw", dir / name);
    }
    std::vector<uint8_t> written = reference;
    {
        auto image = open_image(dir / "none.raw", with_cache(CacheMode::none));
        EXPECT_EQ(dynamic_cast<RawImage&>(*image).file().cache(), CacheMode::none);
        exercise(*image, written, 2);
    }
    {
        auto image = open_image(dir / "writeback.raw", with_cache(CacheMode::writeback));
        EXPECT_EQ(dynamic_cast<RawImage&>(*image).file().cache(), CacheMode::writeback);
        exercise(*image, reference, 2);
    }
    EXPECT_EQ(written, reference);
    SKIP_WITHOUT_QEMU_IMG();
    qemu_img("compare -f raw -F raw " + quoted(dir / "none.raw") + " " +
             quoted(dir / "writeback.raw"));
}

TEST(CacheModeNone, Qcow2WithBackingChainReadsAndWritesWhatWritebackDoes) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    // base.raw <- mid.qcow2 (4 KiB clusters) <- top.qcow2 (64 KiB clusters), twice.
    std::vector<uint8_t> reference = write_base_raw(dir / "base.raw");
    for (const char* mode : {"none", "writeback"}) {
        std::string mid = std::string("mid-") + mode + ".qcow2";
        create_image(dir / mid, testing::qcow2_options(0, 4096, "base.raw", ImageFormat::raw));
        {
            auto image = open_image(dir / mid);
            auto data = pattern(3, 3 << 20, 1 << 20);
            image->write(3 << 20, data);
        }
        create_image(dir / (std::string("top-") + mode + ".qcow2"),
                     testing::qcow2_options(0, 65536, mid, ImageFormat::qcow2));
    }
    auto mid_data = pattern(3, 3 << 20, 1 << 20);
    std::copy(mid_data.begin(), mid_data.end(), reference.begin() + (3 << 20));

    std::vector<uint8_t> written = reference;
    {
        auto image = open_image(dir / "top-none.qcow2", with_cache(CacheMode::none));
        auto& top = dynamic_cast<Qcow2Image&>(*image);
        auto& mid = dynamic_cast<Qcow2Image&>(*top.backing());
        EXPECT_EQ(top.file().cache(), CacheMode::none);
        EXPECT_EQ(mid.file().cache(), CacheMode::none);
        EXPECT_EQ(dynamic_cast<RawImage&>(*mid.backing()).file().cache(), CacheMode::none);
        exercise(*image, written, 4);
        // Again: the clusters are allocated now, so these writes go in place.
        exercise(*image, written, 5);
    }
    {
        auto image = open_image(dir / "top-writeback.qcow2", with_cache(CacheMode::writeback));
        exercise(*image, reference, 4);
        exercise(*image, reference, 5);
    }
    EXPECT_EQ(written, reference);
    for (const char* mode : {"none", "writeback"}) {
        std::string out =
            qemu_img("check " + quoted(dir / (std::string("top-") + mode + ".qcow2")));
        EXPECT_NE(out.find("No errors"), std::string::npos) << out;
    }
    qemu_img("compare " + quoted(dir / "top-none.qcow2") + " " +
             quoted(dir / "top-writeback.qcow2"));
}

TEST(CacheModeNone, ReadsPastTheEndOfTheFileReadAsZeroes) {
    ScratchDir dir;
    auto data = pattern(6, 0, 6000);
    {
        ImageFile file = ImageFile::create(dir / "f");
        file.write(0, data);
    }
    ImageFile file = ImageFile::open(dir / "f", false, CacheMode::none);
    std::vector<uint8_t> expected = data;
    expected.resize(8192, 0);
    // One piece (pread), then two (io_uring): the direct read stops short at
    // the end of the file, and the rest reads as zeroes.
    Buffer one(8192, 0);
    std::fill(one.span().begin(), one.span().end(), 0xff);
    FileRead piece{0, one.span()};
    file.read_batch({&piece, 1});
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), one.span().begin()));

    Buffer two(8192, 0);
    std::fill(two.span().begin(), two.span().end(), 0xff);
    FileRead pieces[] = {{0, two.span().first(4096)}, {4096, two.span().subspan(4096)}};
    file.read_batch(pieces);
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), two.span().begin()));
}

// Pages of the first `length` bytes of `path` that are in the page cache.
size_t cached_pages(const std::filesystem::path& path, size_t length) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    void* map = mmap(nullptr, length, PROT_READ, MAP_SHARED, fd.get(), 0);
    if (map == MAP_FAILED) {
        ADD_FAILURE() << "mmap " << path << ": " << std::strerror(errno);
        return 0;
    }
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> resident((length + page - 1) / page);
    EXPECT_EQ(mincore(map, length, resident.data()), 0) << std::strerror(errno);
    munmap(map, length);
    size_t count = 0;
    for (unsigned char r : resident) {
        count += r & 1;
    }
    return count;
}

void drop_cached_pages(const std::filesystem::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_EQ(fdatasync(fd.get()), 0);
    ASSERT_EQ(posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
}

TEST(CacheModeNone, GuestDataBypassesThePageCache) {
    ScratchDir dir;
    struct statfs fs {};
    ASSERT_EQ(statfs(dir.path().c_str(), &fs), 0);
    if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) {
        GTEST_SKIP() << dir.path() << " is in memory: its page cache is the storage";
    }
    constexpr size_t kSize = 4 << 20;
    CreateOptions create;
    create.format = ImageFormat::raw;
    create.size = kSize;
    create_image(dir / "r.raw", create);
    {
        auto image = open_image(dir / "r.raw");
        auto data = pattern(7, 0, kSize);
        image->write(0, data);
    }
    drop_cached_pages(dir / "r.raw");
    ASSERT_EQ(cached_pages(dir / "r.raw", kSize), 0u) << "the page cache cannot be dropped here";

    // The format given: probing would read the first bytes through the cache.
    OpenOptions none = with_cache(CacheMode::none);
    none.format = ImageFormat::raw;
    {
        auto image = open_image(dir / "r.raw", none);
        Buffer buffer(65536, 0);
        for (uint64_t offset = 0; offset < kSize; offset += 65536) {
            image->read(offset, buffer.span());
        }
        image->write(1 << 20, buffer.span());
    }
    EXPECT_EQ(cached_pages(dir / "r.raw", kSize), 0u);

    OpenOptions writeback = none;
    writeback.cache = CacheMode::writeback;
    {
        auto image = open_image(dir / "r.raw", writeback);
        Buffer buffer(65536, 0);
        image->read(0, buffer.span());
    }
    EXPECT_GE(cached_pages(dir / "r.raw", kSize), 16u);
}

// What opening `path` with cache none throws; empty if it opens.
std::string cache_none_error(const std::filesystem::path& path) {
    try {
        open_image(path, with_cache(CacheMode::none));
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}

void create_raw(const std::filesystem::path& path) {
    CreateOptions create;
    create.format = ImageFormat::raw;
    create.size = 1 << 20;
    create_image(path, create);
}

// ramfs has no O_DIRECT on any kernel. A child mounts one in user and mount
// namespaces of its own (no root needed) and sends back the error; it exits
// 77 where namespaces are not allowed.
constexpr int kNoNamespaces = 77;

std::string error_on_ramfs(const std::filesystem::path& mount_point, bool& available) {
    int pipe_fds[2];
    EXPECT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
    UniqueFd read_end(pipe_fds[0]);
    UniqueFd write_end(pipe_fds[1]);
    uid_t uid = getuid();
    gid_t gid = getgid();
    pid_t child = fork();
    if (child == 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
            _exit(kNoNamespaces);
        }
        // Map ourselves, so files we create have an owner.
        auto put = [](const char* file, const std::string& text) {
            std::ofstream out(file);
            out << text;
            return static_cast<bool>(out.flush());
        };
        if (!put("/proc/self/setgroups", "deny") ||
            !put("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
            !put("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1") ||
            mount("none", mount_point.c_str(), "ramfs", 0, nullptr) != 0) {
            _exit(kNoNamespaces);
        }
        std::string message;
        try {
            create_raw(mount_point / "r.raw");
            message = cache_none_error(mount_point / "r.raw");
        } catch (const std::exception& e) {
            message = std::string("creating the image failed: ") + e.what();
        }
        ssize_t n = write(write_end.get(), message.data(), message.size());
        _exit(n == static_cast<ssize_t>(message.size()) ? 0 : 1);
    }
    write_end.reset();
    std::string message;
    char chunk[512];
    for (ssize_t n; (n = read(read_end.get(), chunk, sizeof(chunk))) > 0;) {
        message.append(chunk, static_cast<size_t>(n));
    }
    int status = 0;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    available = !(WIFEXITED(status) && WEXITSTATUS(status) == kNoNamespaces);
    EXPECT_TRUE(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || !available)) << status;
    return message;
}

TEST(CacheModeNone, RefusesAFileSystemWithoutODirect) {
    ScratchDir dir;
    std::filesystem::create_directory(dir / "ramfs");
    bool available = false;
    std::string message = error_on_ramfs(dir / "ramfs", available);
    std::filesystem::path image = dir / "ramfs" / "r.raw";
    if (!available) {
        // tmpfs refuses O_DIRECT before Linux 6.6.
        ScratchDir unique;  // only for a name no other test uses
        image = std::filesystem::path("/dev/shm") / (unique.path().filename().string() + ".raw");
        create_raw(image);
        message = cache_none_error(image);
        std::filesystem::remove(image);
        if (message.empty()) {
            GTEST_SKIP() << "no file system here refuses O_DIRECT: user namespaces are not "
                            "allowed (no ramfs) and /dev/shm takes O_DIRECT";
        }
    }
    EXPECT_NE(message.find("disk " + image.string() + ": cache none needs O_DIRECT"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("cache writeback"), std::string::npos) << message;
}

}  // namespace
}  // namespace vireo
