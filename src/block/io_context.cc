#include "block/io_context.h"

#include <limits.h>
#include <poll.h>

#include <algorithm>
#include <system_error>
#include <utility>

#include "base/error.h"
#include "block/image_file.h"

namespace vireo {
namespace {

// Keeps each transfer well below the 2 GiB one read or write may move, and
// within the vector count one readv takes.
constexpr size_t kMaxOperationBytes = size_t{1} << 30;
constexpr size_t kMaxOperationBuffers = IOV_MAX;

// Page-cache I/O that io_uring's workers do better than the submitting thread
// (IOSQE_ASYNC), as measured with `disk_bench.py` on ext4. `queued_before`
// counts what this context had queued or in flight when the operation was
// queued (so "alone" is the first since the ring emptied).
// - A read this large is a long copy on the CPU, which io_uring would do
//   inline, one after another; with others queued the workers copy on
//   several cores, as QEMU's thread pool does (1 MiB reads at depth 8: +48%
//   on two cores, 256 KiB +20%). Alone, inline is faster (no handoff).
// - A write alone, on a file system without non-blocking page-cache writes
//   (ext4; ImageFile says), which io_uring hands to its workers anyway after
//   preparing it: sent at once, 4 KiB writes at depth 1 ran 2.5 to 3 times as
//   fast (why the direct route is that much faster is not known). Among
//   others it lost a third at depth 32, so there io_uring's own route stays
//   (io-wq runs buffered writes to one file one at a time, hashed by inode,
//   which may be why).
constexpr size_t kParallelCopyBytes = 256 * 1024;

bool better_on_workers(const ImageFile& file, bool write, size_t length, unsigned queued_before) {
    if (write) {
        return file.page_cache_writes_go_to_workers() && queued_before == 0;
    }
    return length >= kParallelCopyBytes && queued_before > 0;
}

}  // namespace

class IoContext::Request {
public:
    DiskCompletion done;
    std::function<void()> after;
    unsigned parts = 0;  // not yet done, end() counting as one
    std::optional<IoError> failure;
};

struct IoContext::Operation {
    Request* request;
    const ImageFile* file;
    enum class Kind { read, write, sync } kind;
    uint64_t offset = 0;
    std::vector<iovec> buffers;
    size_t length = 0;
};

IoContext::IoContext(unsigned depth) : depth_(depth) {
    // Twice as many completion slots as operations: a full ring never drops one.
    // The owner always collects completions in the kernel (waiting, or after
    // its eventfd woke it), so a completion need not interrupt it while it
    // runs (COOP_TASKRUN: no IPI per completion; kernels before 5.19 lack it).
    int rc = -EINVAL;
    for (unsigned optional : {unsigned{IORING_SETUP_COOP_TASKRUN}, 0u}) {
        io_uring_params params{};
        params.flags = IORING_SETUP_CQSIZE | optional;
        params.cq_entries = depth * 2;
        rc = io_uring_queue_init_params(depth, &ring_, &params);
        if (rc != -EINVAL) {
            break;
        }
    }
    if (rc < 0) {
        errno = -rc;
        fail_errno("io_uring_queue_init");
    }
}

IoContext::~IoContext() {
    // The kernel may still write into buffers: wait for it, but run nothing.
    while (operations_in_flight_ > 0) {
        io_uring_submit(&ring_);
        io_uring_cqe* cqe = nullptr;
        if (io_uring_wait_cqe(&ring_, &cqe) < 0) {
            continue;
        }
        delete static_cast<Operation*>(io_uring_cqe_get_data(cqe));
        io_uring_cqe_seen(&ring_, cqe);
        --operations_in_flight_;
    }
    io_uring_queue_exit(&ring_);
}

int IoContext::event_fd() {
    if (!done_event_registered_) {
        int rc = io_uring_register_eventfd(&ring_, done_event_.fd());
        if (rc < 0) {
            errno = -rc;
            fail_errno("io_uring_register_eventfd");
        }
        done_event_registered_ = true;
    }
    return done_event_.fd();
}

IoContext& IoContext::for_this_thread() {
    thread_local IoContext context(64);
    return context;
}

void IoContext::run_and_wait(const std::function<void(IoContext&, Request&)>& add) {
    IoContext& context = for_this_thread();
    bool done = false;
    std::optional<IoError> failure;
    Request& request = context.begin([&](const IoError* error) {
        done = true;
        if (error) {
            failure = *error;
        }
    });
    try {
        add(context, request);
    } catch (...) {
        context.end(request);
        context.wait_until([&] { return done; });
        throw;
    }
    context.end(request);
    context.submit();
    context.wait_until([&] { return done; });
    if (failure) {
        throw *failure;
    }
}

IoContext::Request& IoContext::begin(DiskCompletion done) {
    std::unique_ptr<Request> request;
    if (idle_requests_.empty()) {
        request = std::make_unique<Request>();
    } else {
        request = std::move(idle_requests_.back());
        idle_requests_.pop_back();
    }
    request->done = std::move(done);
    request->parts = 1;
    ++requests_in_flight_;
    return *request.release();
}

void IoContext::read(Request& request, const ImageFile& file, uint64_t offset,
                     std::span<const iovec> buffers) {
    queue(request, file, false, offset, buffers);
}

void IoContext::write(Request& request, const ImageFile& file, uint64_t offset,
                      std::span<const iovec> buffers) {
    queue(request, file, true, offset, buffers);
}

// One operation per kMaxOperationBytes or kMaxOperationBuffers, whichever
// comes first; a buffer may be split between two.
void IoContext::queue(Request& request, const ImageFile& file, bool write, uint64_t offset,
                      std::span<const iovec> buffers) {
    auto kind = write ? Operation::Kind::write : Operation::Kind::read;
    std::unique_ptr<Operation> operation;
    auto send = [&] {
        io_uring_sqe* sqe = next_sqe();
        int fd = file.io_fd(operation->offset, operation->buffers);
        auto count = static_cast<unsigned>(operation->buffers.size());
        if (write) {
            io_uring_prep_writev(sqe, fd, operation->buffers.data(), count, operation->offset);
        } else {
            io_uring_prep_readv(sqe, fd, operation->buffers.data(), count, operation->offset);
        }
        if (fd == file.fd() &&
            better_on_workers(file, write, operation->length, operations_in_flight_)) {
            io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
        }
        io_uring_sqe_set_data(sqe, operation.release());
        ++operations_in_flight_;
        ++request.parts;
    };
    for (const iovec& buffer : buffers) {
        auto* base = static_cast<uint8_t*>(buffer.iov_base);
        size_t left = buffer.iov_len;
        while (left > 0) {
            if (!operation) {
                operation.reset(new Operation{&request, &file, kind, offset, {}, 0});
            }
            size_t piece = std::min(left, kMaxOperationBytes - operation->length);
            operation->buffers.push_back({base, piece});
            operation->length += piece;
            offset += piece;
            base += piece;
            left -= piece;
            if (operation->length == kMaxOperationBytes ||
                operation->buffers.size() == kMaxOperationBuffers) {
                send();
            }
        }
    }
    if (operation) {
        send();
    }
}

void IoContext::sync(Request& request, const ImageFile& file) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_fsync(sqe, file.fd(), IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data(sqe, new Operation{&request, &file, Operation::Kind::sync, 0, {}, 0});
    ++operations_in_flight_;
    ++request.parts;
}

DiskCompletion IoContext::part(Request& request) {
    ++request.parts;
    return [this, &request](const IoError* failure) {
        if (failure) {
            fail(request, *failure);
        }
        part_done(request);
    };
}

void IoContext::fail(Request& request, const IoError& error) {
    if (!request.failure) {
        request.failure = error;
    }
}

void IoContext::end(Request& request, std::function<void()> after) {
    request.after = std::move(after);
    part_done(request);
}

void IoContext::part_done(Request& request) {
    if (--request.parts == 0) {
        // An event loop learns of a request done outside process_completions()
        // (a failure while it was built, a wait) from the eventfd too; inside,
        // process_completions() runs it before it returns, and a signal would
        // only wake the loop once more for nothing (a write, an epoll_wait and
        // a read per request).
        if (ready_.empty() && done_event_registered_ && !processing_completions_) {
            done_event_.signal();
        }
        ready_.push_back(&request);
    }
}

void IoContext::expect_post() {
    std::lock_guard guard(posted_mutex_);
    ++posts_expected_;
}

void IoContext::post(std::function<void()> work) {
    {
        std::lock_guard guard(posted_mutex_);
        posted_.push_back(std::move(work));
        if (posts_expected_ > 0) {
            --posts_expected_;
        }
    }
    done_event_.signal();
}

void IoContext::run_posted() {
    std::vector<std::function<void()>> posted;
    {
        std::lock_guard guard(posted_mutex_);
        posted.swap(posted_);
    }
    for (auto& work : posted) {
        work();
    }
}

// Nothing is left on the ring: true when a post is still to come (and none
// has arrived since the eventfd was last emptied), false when one is here.
bool IoContext::sleep_for_post() {
    done_event_.consume();
    std::lock_guard guard(posted_mutex_);
    if (!posted_.empty()) {
        return false;
    }
    if (posts_expected_ == 0) {
        vireo::fail("io_uring: waiting for a request that has no operation left");
    }
    return true;
}

// A free submission slot; with `depth_` operations out, waits for one to finish.
// A long batch goes to the kernel in growing pieces (2, 4, 8... operations):
// the first reach the disk while the rest are still being prepared, so a disk
// that completes a batch at once is not left idle while the next is built,
// and the later pieces still save their system calls.
io_uring_sqe* IoContext::next_sqe() {
    while (operations_in_flight_ >= depth_) {
        reap(true);
    }
    if (io_uring_sq_ready(&ring_) >= next_piece_) {
        submit_queued();
        next_piece_ = std::min(next_piece_ * 2, depth_);
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
        submit_queued();
        sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
}

void IoContext::submit() {
    submit_queued();
    next_piece_ = kFirstPiece;
}

void IoContext::submit_queued() {
    int rc;
    do {
        rc = io_uring_submit(&ring_);
    } while (rc == -EINTR || rc == -EAGAIN);
    if (rc < 0) {
        errno = -rc;
        fail_errno("io_uring_submit");
    }
}

// Finishes every operation the kernel has completed; with `wait`, submits
// what is queued and waits for at least one, in one system call.
void IoContext::reap(bool wait) {
    io_uring_cqe* cqe = nullptr;
    if (wait && io_uring_peek_cqe(&ring_, &cqe) == 0) {
        submit();  // one is here already: no need to wait
    } else if (wait) {
        int rc;
        do {
            rc = io_uring_submit_and_wait(&ring_, 1);
        } while (rc == -EINTR || rc == -EAGAIN);
        if (rc < 0) {
            errno = -rc;
            fail_errno("io_uring_submit_and_wait");
        }
        next_piece_ = kFirstPiece;
    }
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
        std::unique_ptr<Operation> operation(static_cast<Operation*>(io_uring_cqe_get_data(cqe)));
        int result = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        --operations_in_flight_;
        finish(*operation, result);
    }
}

// A short transfer (the end of the file, a signal) or EAGAIN is finished the
// plain way, which zero-fills or reports the error.
void IoContext::finish(Operation& operation, int result) {
    Request& request = *operation.request;
    try {
        switch (operation.kind) {
            case Operation::Kind::sync:
                if (result < 0) {
                    throw operation.file->io_error("fdatasync", 0, -result);
                }
                break;
            case Operation::Kind::read:
            case Operation::Kind::write: {
                bool write = operation.kind == Operation::Kind::write;
                if (result < 0 && result != -EAGAIN && result != -EINTR) {
                    throw operation.file->io_error(write ? "write" : "read", operation.offset,
                                                   -result);
                }
                auto done = static_cast<size_t>(std::max(result, 0));
                if (done < operation.length) {
                    operation.file->finish_vectored(write, operation.offset, operation.buffers,
                                                    done);
                }
                break;
            }
        }
    } catch (const IoError& error) {
        fail(request, error);
    }
    part_done(request);
}

size_t IoContext::process_completions() {
    struct Restore {
        bool& flag;
        bool value;
        ~Restore() { flag = value; }
    } restore{processing_completions_, std::exchange(processing_completions_, true)};
    if (done_event_registered_) {
        done_event_.consume();
    }
    reap(false);
    run_posted();
    size_t ran = 0;
    while (!ready_.empty()) {
        std::vector<Request*> ready = std::exchange(ready_, {});
        for (Request* request : ready) {
            std::unique_ptr<Request> owned(request);
            if (owned->after) {
                std::exchange(owned->after, {})();
            }
            DiskCompletion done = std::exchange(owned->done, {});
            std::optional<IoError> failure = std::exchange(owned->failure, std::nullopt);
            --requests_in_flight_;
            idle_requests_.push_back(std::move(owned));
            done(failure ? &*failure : nullptr);
            ++ran;
        }
        reap(false);
        run_posted();
    }
    return ran;
}

void IoContext::wait_until(const std::function<bool()>& done) {
    while (true) {
        process_completions();
        if (done()) {
            return;
        }
        if (operations_in_flight_ > 0) {
            reap(true);
        } else if (sleep_for_post()) {
            pollfd event{done_event_.fd(), POLLIN, 0};
            while (poll(&event, 1, -1) < 0 && errno == EINTR) {
            }
        }
    }
}

void IoContext::drain() {
    submit();
    wait_until([this] { return requests_in_flight_ == 0; });
}

}  // namespace vireo
