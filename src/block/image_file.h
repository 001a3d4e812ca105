#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/unique_fd.h"
#include "block/image_options.h"

namespace vireo {

class IoRing;

// One piece of a batched data transfer: `data` at byte `offset` of the file.
struct FileRead {
    uint64_t offset;
    std::span<uint8_t> data;
};
struct FileWrite {
    uint64_t offset;
    std::span<const uint8_t> data;
};

// An image file opened for I/O. Guest data goes through io_uring (read_batch /
// write_batch submit every piece of a request at once); small metadata reads and
// writes use pread/pwrite. Failures throw IoError naming the file.
//
// Cache mode none: a second descriptor, opened O_DIRECT, carries the pieces of
// read_batch / write_batch whose buffer address, offset and length meet the
// file's direct I/O alignment; read, write and unaligned pieces go through the
// page cache. The kernel keeps the two coherent (direct I/O writes back and
// drops the cached pages of its range), so no result depends on alignment.
//
// Thread safety: every method may be called from several threads at once; each
// batch takes an io_uring of its own from a small pool, so requests of different
// threads proceed concurrently.
class ImageFile {
public:
    // Opens an existing file; `writable` opens it O_RDWR. Cache mode none
    // refuses a file system without O_DIRECT (tmpfs on older kernels).
    static ImageFile open(const std::filesystem::path& path, bool writable,
                          CacheMode cache = CacheMode::writeback);
    // Creates a new, empty file; refuses to replace one that exists.
    static ImageFile create(const std::filesystem::path& path);

    ImageFile(ImageFile&&) noexcept;
    ImageFile& operator=(ImageFile&&) noexcept;
    ~ImageFile();

    const std::filesystem::path& path() const { return path_; }
    int fd() const { return fd_.get(); }
    bool writable() const { return writable_; }
    CacheMode cache() const { return direct_fd_ ? CacheMode::none : CacheMode::writeback; }
    uint64_t size() const;
    // Bytes the file occupies on the host (holes excluded).
    uint64_t allocated_bytes() const;

    // Reads past the end of the file read as zeroes.
    void read(uint64_t offset, std::span<uint8_t> data) const;
    void write(uint64_t offset, std::span<const uint8_t> data);
    void read_batch(std::span<const FileRead> reads) const;
    void write_batch(std::span<const FileWrite> writes);

    // Everything written so far is on stable storage (fdatasync).
    void sync();
    void truncate(uint64_t size);
    // The range reads as zeroes and, where the file system can, stops taking space.
    void punch_hole(uint64_t offset, uint64_t length);
    // The range reads as zeroes and keeps (or gets) its space; the file grows
    // to cover it. Cheaper than writing zeroes where the file system can.
    void zero_range(uint64_t offset, uint64_t length);

private:
    ImageFile(std::filesystem::path path, UniqueFd fd, bool writable);
    void zero_with_fallocate(int mode, const char* what, uint64_t offset, uint64_t length);
    void write_zeroes(uint64_t offset, uint64_t length);
    bool direct(uint64_t offset, const uint8_t* data, size_t length) const;
    size_t direct_io(bool write, uint64_t offset, uint8_t* data, size_t length) const;
    std::unique_ptr<IoRing> take_ring() const;
    void return_ring(std::unique_ptr<IoRing> ring) const;

    std::filesystem::path path_;
    UniqueFd fd_;
    bool writable_ = false;
    // Cache mode none only: the O_DIRECT descriptor and what it needs aligned
    // (buffer addresses; offsets and lengths).
    UniqueFd direct_fd_;
    uint32_t direct_memory_alignment_ = 0;
    uint32_t direct_alignment_ = 0;
    // Idle rings, reused by later batches (one per thread that ran a batch at once).
    mutable std::unique_ptr<std::mutex> rings_mutex_;
    mutable std::vector<std::unique_ptr<IoRing>> idle_rings_;
};

}  // namespace vireo
