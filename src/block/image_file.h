#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "base/unique_fd.h"
#include "block/image_options.h"

struct iovec;

namespace vireo {

// One piece of a batched data transfer: `data` at byte `offset` of the file.
struct FileRead {
    uint64_t offset;
    std::span<uint8_t> data;
};
struct FileWrite {
    uint64_t offset;
    std::span<const uint8_t> data;
};

// An image file opened for I/O. Guest data goes through io_uring: a disk's
// IoContext carries its requests asynchronously, and read_batch / write_batch
// submit every piece of a batch at once on the calling thread's own context;
// small metadata reads and writes use pread/pwrite. Failures throw IoError
// naming the file.
//
// Cache mode none: a second descriptor, opened O_DIRECT, carries the pieces of
// read_batch / write_batch whose buffer address, offset and length meet the
// file's direct I/O alignment; read, write and unaligned pieces go through the
// page cache. The kernel keeps the two coherent (direct I/O writes back and
// drops the cached pages of its range), so no result depends on alignment.
//
// Thread safety: every method may be called from several threads at once; each
// thread's batches run on its own io_uring, so they proceed concurrently.
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

    // For IoContext: the descriptor a vectored transfer of `buffers` at `offset`
    // goes through (the O_DIRECT one when everything is aligned for it), the
    // plain completion of one the kernel cut short after `done` bytes, and the
    // IoError that names this file.
    int io_fd(uint64_t offset, std::span<const iovec> buffers) const;
    void finish_vectored(bool write, uint64_t offset, std::span<const iovec> buffers,
                         size_t done) const;
    class IoError io_error(const char* what, uint64_t offset, int error) const;
    // Whether io_uring hands this file's page-cache writes to its workers
    // rather than doing them on the submitting thread: file systems without
    // non-blocking page-cache writes. Only ext2/3/4 are named (measured
    // there); others are taken to have them (XFS, btrfs, block devices).
    bool page_cache_writes_go_to_workers() const { return page_cache_writes_go_to_workers_; }

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
    void write_all(uint64_t offset, std::span<const uint8_t> data) const;
    void zero_with_fallocate(int mode, const char* what, uint64_t offset, uint64_t length);
    void write_zeroes(uint64_t offset, uint64_t length);
    bool direct(uint64_t offset, const uint8_t* data, size_t length) const;
    size_t direct_io(bool write, uint64_t offset, uint8_t* data, size_t length) const;

    std::filesystem::path path_;
    UniqueFd fd_;
    bool writable_ = false;
    bool page_cache_writes_go_to_workers_ = false;
    // Cache mode none only: the O_DIRECT descriptor and what it needs aligned
    // (buffer addresses; offsets and lengths).
    UniqueFd direct_fd_;
    uint32_t direct_memory_alignment_ = 0;
    uint32_t direct_alignment_ = 0;
};

}  // namespace vireo
