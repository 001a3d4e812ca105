#include "block/image_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <system_error>

#include "block/disk_image.h"
#include "block/io_ring.h"

namespace vireo {
namespace {

// Keeps each io_uring transfer well below the 2 GiB a single read/write may move.
constexpr size_t kMaxOpBytes = size_t{1} << 30;

[[noreturn]] void io_fail(const std::filesystem::path& path, const char* what, uint64_t offset,
                          int error) {
    throw IoError(fmt::format("disk {}: {} at offset {}: {}", path.string(), what, offset,
                              std::generic_category().message(error)));
}

}  // namespace

ImageFile::ImageFile(std::filesystem::path path, UniqueFd fd, bool writable)
    : path_(std::move(path)),
      fd_(std::move(fd)),
      writable_(writable),
      rings_mutex_(std::make_unique<std::mutex>()) {}

ImageFile::ImageFile(ImageFile&&) noexcept = default;
ImageFile& ImageFile::operator=(ImageFile&&) noexcept = default;
ImageFile::~ImageFile() = default;

ImageFile ImageFile::open(const std::filesystem::path& path, bool writable) {
    UniqueFd fd(::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC));
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
    return ImageFile(path, std::move(fd), writable);
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
            io_fail(path_, "read", offset + done, errno);
        }
        if (n == 0) {
            std::memset(data.data() + done, 0, data.size() - done);
            return;
        }
        done += static_cast<size_t>(n);
    }
}

void ImageFile::write(uint64_t offset, std::span<const uint8_t> data) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done,
                             static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            io_fail(path_, "write", offset + done, errno);
        }
        done += static_cast<size_t>(n);
    }
}

std::unique_ptr<IoRing> ImageFile::take_ring() const {
    {
        std::lock_guard lock(*rings_mutex_);
        if (!idle_rings_.empty()) {
            std::unique_ptr<IoRing> ring = std::move(idle_rings_.back());
            idle_rings_.pop_back();
            return ring;
        }
    }
    return std::make_unique<IoRing>();
}

void ImageFile::return_ring(std::unique_ptr<IoRing> ring) const {
    std::lock_guard lock(*rings_mutex_);
    idle_rings_.push_back(std::move(ring));
}

void ImageFile::read_batch(std::span<const FileRead> reads) const {
    if (reads.size() == 1 && reads[0].data.size() <= kMaxOpBytes / 256) {
        // One small piece: a plain pread costs less than a ring round trip.
        read(reads[0].offset, reads[0].data);
        return;
    }
    std::vector<IoRing::Op> ops;
    for (const FileRead& r : reads) {
        for (size_t done = 0; done < r.data.size(); done += kMaxOpBytes) {
            ops.push_back({false, r.offset + done, r.data.data() + done,
                           std::min(kMaxOpBytes, r.data.size() - done)});
        }
    }
    std::unique_ptr<IoRing> ring = take_ring();
    ring->run(fd_.get(), ops);
    return_ring(std::move(ring));
    for (const IoRing::Op& op : ops) {
        if (op.result < 0) {
            io_fail(path_, "read", op.offset, static_cast<int>(-op.result));
        }
        // Short read (end of file, or a signal): finish it the plain way.
        size_t done = static_cast<size_t>(op.result);
        if (done < op.length) {
            read(op.offset + done, {op.data + done, op.length - done});
        }
    }
}

void ImageFile::write_batch(std::span<const FileWrite> writes) {
    if (writes.size() == 1 && writes[0].data.size() <= kMaxOpBytes / 256) {
        write(writes[0].offset, writes[0].data);
        return;
    }
    std::vector<IoRing::Op> ops;
    for (const FileWrite& w : writes) {
        for (size_t done = 0; done < w.data.size(); done += kMaxOpBytes) {
            // io_uring does not write through the pointer; the cast only fits its signature.
            ops.push_back({true, w.offset + done, const_cast<uint8_t*>(w.data.data() + done),
                           std::min(kMaxOpBytes, w.data.size() - done)});
        }
    }
    std::unique_ptr<IoRing> ring = take_ring();
    ring->run(fd_.get(), ops);
    return_ring(std::move(ring));
    for (const IoRing::Op& op : ops) {
        if (op.result < 0) {
            io_fail(path_, "write", op.offset, static_cast<int>(-op.result));
        }
        size_t done = static_cast<size_t>(op.result);
        if (done < op.length) {
            write(op.offset + done, {op.data + done, op.length - done});
        }
    }
}

void ImageFile::sync() {
    while (fdatasync(fd_.get()) != 0) {
        if (errno != EINTR) {
            io_fail(path_, "fdatasync", 0, errno);
        }
    }
}

void ImageFile::truncate(uint64_t size) {
    if (ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) {
        io_fail(path_, "truncate", size, errno);
    }
}

void ImageFile::punch_hole(uint64_t offset, uint64_t length) {
    if (fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0) {
        return;
    }
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
        io_fail(path_, "punch hole", offset, errno);
    }
    // No hole punching here: write the zeroes instead.
    write_zeroes(offset, length);
}

void ImageFile::zero_range(uint64_t offset, uint64_t length) {
    if (fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0) {
        return;
    }
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
        io_fail(path_, "zero range", offset, errno);
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
