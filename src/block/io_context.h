#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/event_fd.h"
#include "block/disk_image.h"

namespace vireo {

class ImageFile;

// One thread's asynchronous disk I/O: an io_uring on which the file operations
// of many disk requests run at once, and an eventfd, raised whenever a request
// is done, that the thread's event loop watches. Requests complete in any
// order; each one's DiskCompletion runs from process_completions() (never from
// inside submit or the calls that build a request), so a completion may start
// new requests.
//
// Not thread-safe: one thread owns a context. Destroying it waits for the
// kernel to finish with every buffer, without running completions; owners
// drain() first.
class IoContext {
public:
    class Request;

    // At most `depth` file operations are with the kernel at once; more wait
    // (the thread blocks for a completion) before they are queued.
    explicit IoContext(unsigned depth = 256);
    ~IoContext();
    IoContext(const IoContext&) = delete;
    IoContext& operator=(const IoContext&) = delete;

    // This thread's own context, for synchronous calls (DiskImage::read...).
    static IoContext& for_this_thread();
    // Begins a request on this thread's context, lets `add` add its parts, and
    // waits for it; throws the IoError it failed with.
    static void run_and_wait(const std::function<void(IoContext&, Request&)>& add);

    // Readable when a request is done: then call process_completions(). The
    // ring raises it only once it was asked for, so a context that is only
    // waited on (wait_until) costs no eventfd write and read per request.
    int event_fd();
    // Hands the rest of the queued file operations to the kernel (a long
    // batch went out in growing pieces as it was queued).
    void submit();
    // Runs the completions of every finished request; returns how many ran.
    size_t process_completions();
    // Blocks until `done()` holds, running completions meanwhile.
    void wait_until(const std::function<bool()>& done);
    // Blocks until every request begun here has completed.
    void drain();
    // Requests begun and not yet completed.
    size_t requests_in_flight() const { return requests_in_flight_; }

    // For DiskImage implementations: begin() a request, add its parts, end() it.
    // It completes once end() was called and every part is done; the first
    // failure is what its completion gets.
    Request& begin(DiskCompletion done);
    // File operations on the ring. The buffers are copied (not the bytes).
    void read(Request& request, const ImageFile& file, uint64_t offset,
              std::span<const iovec> buffers);
    void write(Request& request, const ImageFile& file, uint64_t offset,
               std::span<const iovec> buffers);
    void sync(Request& request, const ImageFile& file);
    // A part done elsewhere (a nested request on a backing file): call the
    // returned completion, once, when it is done.
    DiskCompletion part(Request& request);
    void fail(Request& request, const IoError& error);
    // No more parts. `after`, if given, runs on this thread once every part is
    // done, just before the completion (an image releases what the request held).
    void end(Request& request, std::function<void()> after = {});

    // Work for this context's thread, from any thread: a request waiting for
    // another one (perhaps on another context) resumes here. The owner
    // announces each post it will wait for with expect_post(), so wait_until()
    // sleeps for it instead of reporting a request with nothing left to do.
    void expect_post();
    void post(std::function<void()> work);

private:
    struct Operation;
    void queue(Request& request, const ImageFile& file, bool write, uint64_t offset,
               std::span<const iovec> buffers);
    io_uring_sqe* next_sqe();
    void submit_queued();
    void reap(bool wait);
    void finish(Operation& operation, int result);
    void part_done(Request& request);
    void run_posted();
    bool sleep_for_post();

    static constexpr unsigned kFirstPiece = 2;

    io_uring ring_{};
    unsigned depth_;
    unsigned next_piece_ = kFirstPiece;  // queued operations that go at once
    EventFd done_event_;
    bool done_event_registered_ = false;
    bool processing_completions_ = false;  // inside process_completions()
    unsigned operations_in_flight_ = 0;
    size_t requests_in_flight_ = 0;
    std::vector<std::unique_ptr<Request>> idle_requests_;
    std::vector<Request*> ready_;  // done, completion not yet run
    std::mutex posted_mutex_;      // guards the two below
    std::vector<std::function<void()>> posted_;
    size_t posts_expected_ = 0;
};

}  // namespace vireo
