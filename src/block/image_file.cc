#include "block/image_file.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <system_error>

#include "block/disk_image.h"
#include "block/io_context.h"

namespace vireo {
namespace {

// Up to this size a single piece goes by a plain pread/pwrite, cheaper than a ring round trip.
constexpr size_t kMaxPlainBytes = size_t{4} << 20;

struct DirectAlignment {
    uint32_t memory;
    uint32_t offset;  // and length
};

[[noreturn]] void no_direct_io(const std::filesystem::path& path, const char* why) {
    fail("disk {}: cache none needs O_DIRECT, which {}; open it with cache writeback",
         path.string(), why);
}

// What O_DIRECT needs aligned on this file: what the kernel says (statx,
// Linux 6.1+), else a block device's logical block size, else 4096, the
// largest logical block size in common use.
DirectAlignment direct_alignment(int fd, const std::filesystem::path& path) {
    struct statx sx {};
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN)) {
        if (sx.stx_dio_offset_align == 0) {
            no_direct_io(path, "the file system does not support for this file");
        }
        return {std::max(sx.stx_dio_mem_align, 1u), sx.stx_dio_offset_align};
    }
    struct stat st {};
    int sector = 0;
    if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) && ioctl(fd, BLKSSZGET, &sector) == 0 &&
        sector > 0) {
        return {static_cast<uint32_t>(sector), static_cast<uint32_t>(sector)};
    }
    return {4096, 4096};
}

}  // namespace

ImageFile::ImageFile(std::filesystem::path path, UniqueFd fd, bool writable)
    : path_(std::move(path)), fd_(std::move(fd)), writable_(writable) {
    struct statfs fs {};
    page_cache_writes_go_to_workers_ =
        fstatfs(fd_.get(), &fs) == 0 && fs.f_type == EXT4_SUPER_MAGIC;
}

ImageFile::ImageFile(ImageFile&&) noexcept = default;
ImageFile& ImageFile::operator=(ImageFile&&) noexcept = default;
ImageFile::~ImageFile() = default;

ImageFile ImageFile::open(const std::filesystem::path& path, bool writable, CacheMode cache) {
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    UniqueFd fd(::open(path.c_str(), flags));
    if (!fd) {
        fail_errno("disk {}: cannot open{}", path.string(), writable ? " for writing" : "");
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) {
        fail_errno("disk {}: fstat", path.string());
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        fail("disk {}: not a regular file or block device", path.string());
    }
    ImageFile file(path, std::move(fd), writable);
    if (cache == CacheMode::none) {
        // Reopened through /proc so that it is the same file even if the path
        // changed meanwhile; a separate open file description, so O_DIRECT
        // does not reach the buffered descriptor.
        std::string self = fmt::format("/proc/self/fd/{}", file.fd_.get());
        file.direct_fd_ = UniqueFd(::open(self.c_str(), flags | O_DIRECT));
        if (!file.direct_fd_) {
            if (errno == EINVAL) {
                no_direct_io(path, "its file system refuses");
            }
            fail_errno("disk {}: cannot open with O_DIRECT (cache none)", path.string());
        }
        DirectAlignment alignment = direct_alignment(file.direct_fd_.get(), path);
        file.direct_memory_alignment_ = alignment.memory;
        file.direct_alignment_ = alignment.offset;
    }
    return file;
}

ImageFile ImageFile::create(const std::filesystem::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) {
        fail_errno("disk {}: cannot create", path.string());
    }
    return ImageFile(path, std::move(fd), true);
}

uint64_t ImageFile::size() const {
    struct stat st {};
    if (fstat(fd_.get(), &st) != 0) {
        fail_errno("disk {}: fstat", path_.string());
    }
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(fd_.get(), 0, SEEK_END);
        if (end < 0) {
            fail_errno("disk {}: lseek", path_.string());
        }
        return static_cast<uint64_t>(end);
    }
    return static_cast<uint64_t>(st.st_size);
}

uint64_t ImageFile::allocated_bytes() const {
    struct stat st {};
    if (fstat(fd_.get(), &st) != 0) {
        fail_errno("disk {}: fstat", path_.string());
    }
    return static_cast<uint64_t>(st.st_blocks) * 512;
}

void ImageFile::read(uint64_t offset, std::span<uint8_t> data) const {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::pread(fd_.get(), data.data() + done, data.size() - done,
                            static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw io_error("read", offset + done, errno);
        }
        if (n == 0) {
            std::memset(data.data() + done, 0, data.size() - done);
            return;
        }
        done += static_cast<size_t>(n);
    }
}

void ImageFile::write(uint64_t offset, std::span<const uint8_t> data) {
    write_all(offset, data);
}

void ImageFile::write_all(uint64_t offset, std::span<const uint8_t> data) const {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done,
                             static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw io_error("write", offset + done, errno);
        }
        done += static_cast<size_t>(n);
    }
}

bool ImageFile::direct(uint64_t offset, const uint8_t* data, size_t length) const {
    return direct_fd_ && offset % direct_alignment_ == 0 && length % direct_alignment_ == 0 &&
           reinterpret_cast<uintptr_t>(data) % direct_memory_alignment_ == 0;
}

// Bytes moved, which may be short (end of file, no space): the caller
// finishes through the page cache, which zero-fills or reports the error.
size_t ImageFile::direct_io(bool write, uint64_t offset, uint8_t* data, size_t length) const {
    while (true) {
        ssize_t n = write ? ::pwrite(direct_fd_.get(), data, length, static_cast<off_t>(offset))
                          : ::pread(direct_fd_.get(), data, length, static_cast<off_t>(offset));
        if (n >= 0) {
            return static_cast<size_t>(n);
        }
        if (errno != EINTR) {
            throw io_error(write ? "write" : "read", offset, errno);
        }
    }
}

IoError ImageFile::io_error(const char* what, uint64_t offset, int error) const {
    return IoError(fmt::format("disk {}: {} at offset {}: {}", path_.string(), what, offset,
                               std::generic_category().message(error)));
}

int ImageFile::io_fd(uint64_t offset, std::span<const iovec> buffers) const {
    if (!direct_fd_ || offset % direct_alignment_ != 0) {
        return fd_.get();
    }
    for (const iovec& buffer : buffers) {
        if (buffer.iov_len % direct_alignment_ != 0 ||
            reinterpret_cast<uintptr_t>(buffer.iov_base) % direct_memory_alignment_ != 0) {
            return fd_.get();
        }
    }
    return direct_fd_.get();
}

// The rest of each buffer, the plain way; reads past the end of the file read as zeroes.
void ImageFile::finish_vectored(bool write, uint64_t offset, std::span<const iovec> buffers,
                                size_t done) const {
    for (const iovec& buffer : buffers) {
        if (done >= buffer.iov_len) {
            done -= buffer.iov_len;
            offset += buffer.iov_len;
            continue;
        }
        std::span<uint8_t> rest(static_cast<uint8_t*>(buffer.iov_base) + done,
                                buffer.iov_len - done);
        if (write) {
            write_all(offset + done, rest);
        } else {
            read(offset + done, rest);
        }
        offset += buffer.iov_len;
        done = 0;
    }
}

void ImageFile::read_batch(std::span<const FileRead> reads) const {
    if (reads.size() == 1 && reads[0].data.size() <= kMaxPlainBytes) {
        // One small piece: a plain pread costs less than a ring round trip.
        const FileRead& r = reads[0];
        size_t done = direct(r.offset, r.data.data(), r.data.size())
                          ? direct_io(false, r.offset, r.data.data(), r.data.size())
                          : 0;
        read(r.offset + done, r.data.subspan(done));
        return;
    }
    IoContext::run_and_wait([&](IoContext& context, IoContext::Request& request) {
        for (const FileRead& r : reads) {
            iovec buffer{r.data.data(), r.data.size()};
            context.read(request, *this, r.offset, {&buffer, 1});
        }
    });
}

void ImageFile::write_batch(std::span<const FileWrite> writes) {
    // Neither pwrite nor io_uring writes through the pointer; the casts only fit their signatures.
    if (writes.size() == 1 && writes[0].data.size() <= kMaxPlainBytes) {
        const FileWrite& w = writes[0];
        size_t done =
            direct(w.offset, w.data.data(), w.data.size())
                ? direct_io(true, w.offset, const_cast<uint8_t*>(w.data.data()), w.data.size())
                : 0;
        write(w.offset + done, w.data.subspan(done));
        return;
    }
    IoContext::run_and_wait([&](IoContext& context, IoContext::Request& request) {
        for (const FileWrite& w : writes) {
            iovec buffer{const_cast<uint8_t*>(w.data.data()), w.data.size()};
            context.write(request, *this, w.offset, {&buffer, 1});
        }
    });
}

void ImageFile::sync() {
    while (fdatasync(fd_.get()) != 0) {
        if (errno != EINTR) {
            throw io_error("fdatasync", 0, errno);
        }
    }
}

void ImageFile::truncate(uint64_t size) {
    if (ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) {
        throw io_error("truncate", size, errno);
    }
}

void ImageFile::punch_hole(uint64_t offset, uint64_t length) {
    zero_with_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "punch hole", offset, length);
}

void ImageFile::zero_range(uint64_t offset, uint64_t length) {
    zero_with_fallocate(FALLOC_FL_ZERO_RANGE, "zero range", offset, length);
}

// Where the file system lacks the fallocate mode, the zeroes are written.
void ImageFile::zero_with_fallocate(int mode, const char* what, uint64_t offset, uint64_t length) {
    if (fallocate(fd_.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) {
        return;
    }
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
        throw io_error(what, offset, errno);
    }
    write_zeroes(offset, length);
}

void ImageFile::write_zeroes(uint64_t offset, uint64_t length) {
    std::vector<uint8_t> zeroes(std::min<uint64_t>(length, 1 << 20));
    for (uint64_t done = 0; done < length; done += zeroes.size()) {
        write(offset + done, {zeroes.data(), std::min<uint64_t>(zeroes.size(), length - done)});
    }
}

}  // namespace vireo
