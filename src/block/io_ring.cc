#include "block/io_ring.h"

#include <algorithm>

#include "base/error.h"

namespace vireo {

IoRing::IoRing() {
    int rc = io_uring_queue_init(kEntries, &ring_, 0);
    if (rc < 0) {
        errno = -rc;
        fail_errno("io_uring_queue_init");
    }
}

IoRing::~IoRing() {
    io_uring_queue_exit(&ring_);
}

void IoRing::run(std::span<Op> ops) {
    size_t next = 0;
    while (next < ops.size()) {
        size_t count = std::min<size_t>(kEntries, ops.size() - next);
        for (size_t i = 0; i < count; ++i) {
            Op& op = ops[next + i];
            io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
            if (op.write) {
                io_uring_prep_write(sqe, op.fd, op.data, static_cast<unsigned>(op.length),
                                    op.offset);
            } else {
                io_uring_prep_read(sqe, op.fd, op.data, static_cast<unsigned>(op.length),
                                   op.offset);
            }
            io_uring_sqe_set_data64(sqe, next + i);
        }
        int submitted = io_uring_submit(&ring_);
        if (submitted < 0) {
            errno = -submitted;
            fail_errno("io_uring_submit");
        }
        for (size_t done = 0; done < count; ++done) {
            io_uring_cqe* cqe = nullptr;
            int rc;
            do {
                rc = io_uring_wait_cqe(&ring_, &cqe);
            } while (rc == -EINTR);
            if (rc < 0) {
                errno = -rc;
                fail_errno("io_uring_wait_cqe");
            }
            ops[io_uring_cqe_get_data64(cqe)].result = cqe->res;
            io_uring_cqe_seen(&ring_, cqe);
        }
        next += count;
    }
}

}  // namespace vireo
