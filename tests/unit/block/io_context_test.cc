#include "block/io_context.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/uio.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "block/image_file.h"
#include "block_test_support.h"

namespace vireo {
namespace {

using testing::pattern;

class IoContextTest : public ::testing::Test {
protected:
    void SetUp() override {
        ImageFile created = ImageFile::create(scratch / "file");
        created.write(0, contents);
        file.emplace(ImageFile::open(scratch / "file", /*writable=*/true));
    }

    // Queues `count` requests of one 4 KiB read each into `read_buffers`, request i
    // at offset_of(i); each completion records its index in `reads_done`.
    void queue_reads(IoContext& context, int count, const std::function<uint64_t(int)>& offset_of) {
        read_buffers.assign(size_t(count), std::vector<uint8_t>(4096));
        read_iovecs.resize(size_t(count));
        for (int i = 0; i < count; ++i) {
            read_iovecs[i] = {read_buffers[i].data(), read_buffers[i].size()};
            IoContext::Request& request = context.begin([this, i](const IoError* failure) {
                EXPECT_EQ(failure, nullptr);
                reads_done.push_back(i);
            });
            context.read(request, *file, offset_of(i), {&read_iovecs[i], 1});
            context.end(request);
        }
    }

    testing::ScratchDir scratch;
    std::vector<uint8_t> contents = pattern(1, 0, 1 << 20);
    std::optional<ImageFile> file;
    std::vector<std::vector<uint8_t>> read_buffers;
    std::vector<iovec> read_iovecs;
    std::vector<int> reads_done;
};

TEST_F(IoContextTest, CompletionsRunOnlyFromProcessCompletionsInAnyOrder) {
    IoContext context;
    // Asked for before the requests, as an event loop does: the ring raises it from then on.
    int done_fd = context.event_fd();
    constexpr int kRequests = 64;
    // Backwards through the file, 16 KiB apart.
    queue_reads(context, kRequests, [](int i) { return uint64_t(kRequests - 1 - i) * 16384; });
    context.submit();
    EXPECT_EQ(context.requests_in_flight(), size_t{kRequests});
    EXPECT_TRUE(reads_done.empty()) << "nothing completes inside submit";
    while (context.requests_in_flight() > 0) {
        pollfd p{done_fd, POLLIN, -1};
        ASSERT_EQ(::poll(&p, 1, 5000), 1) << "the eventfd never said a request was done";
        context.process_completions();
    }
    ASSERT_EQ(reads_done.size(), size_t{kRequests});
    for (int i = 0; i < kRequests; ++i) {
        uint64_t offset = uint64_t(kRequests - 1 - i) * 16384;
        EXPECT_TRUE(
            std::equal(read_buffers[i].begin(), read_buffers[i].end(), contents.begin() + offset))
            << "request " << i;
    }
}

TEST_F(IoContextTest, ARequestRunByProcessCompletionsDoesNotWakeTheLoopAgain) {
    IoContext context;
    int done_fd = context.event_fd();
    std::vector<uint8_t> buffer(4096);
    iovec iov{buffer.data(), buffer.size()};
    bool completed = false;
    IoContext::Request& request = context.begin([&](const IoError*) { completed = true; });
    context.read(request, *file, 0, {&iov, 1});
    context.end(request);
    context.submit();
    pollfd p{done_fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1) << "the eventfd never said the request was done";
    context.process_completions();
    ASSERT_TRUE(completed);
    // Nothing is left to do: an event loop must not be woken once more for it.
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "the eventfd is still raised";
}

TEST_F(IoContextTest, ALongBatchReachesTheKernelInGrowingPiecesBeforeSubmit) {
    IoContext context;
    int done_fd = context.event_fd();
    constexpr int kRequests = 7;
    queue_reads(context, kRequests, [](int i) { return uint64_t(i) * 4096; });
    // Pieces of 2 and 4 went as the 3rd and 7th were queued; the 7th waits.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (reads_done.size() < 6 && std::chrono::steady_clock::now() < deadline) {
        pollfd p{done_fd, POLLIN, 0};
        ::poll(&p, 1, 100);
        context.process_completions();
    }
    EXPECT_EQ(reads_done.size(), 6u);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    context.process_completions();
    EXPECT_EQ(reads_done.size(), 6u) << "an operation went without submit() ahead of its piece";
    context.submit();
    context.drain();
    EXPECT_EQ(reads_done.size(), size_t{kRequests});
}

TEST_F(IoContextTest, MoreOperationsThanTheDepthWaitTheirTurn) {
    IoContext context(4);
    std::vector<uint8_t> out(256 * 1024);
    // 2000 buffers of 128 bytes: more than one readv takes (IOV_MAX), over
    // more operations than the ring holds at once.
    std::vector<iovec> iovecs;
    for (size_t offset = 0; offset < out.size(); offset += 128) {
        iovecs.push_back({out.data() + offset, 128});
    }
    bool done = false;
    IoContext::Request& request = context.begin([&](const IoError* failure) {
        EXPECT_EQ(failure, nullptr);
        done = true;
    });
    context.read(request, *file, 4096, iovecs);
    context.end(request);
    context.drain();
    EXPECT_TRUE(done);
    EXPECT_TRUE(std::equal(out.begin(), out.end(), contents.begin() + 4096));
}

TEST_F(IoContextTest, LargePageCacheReadsInFlightTogetherEachGetTheirOwnBytes) {
    // 512 KiB reads with others in flight go to io_uring's workers (run in
    // parallel); the last two run past the end of the file.
    IoContext context;
    constexpr size_t kRead = 512 * 1024;
    constexpr int kRequests = 8;
    std::vector<std::vector<uint8_t>> out(kRequests, std::vector<uint8_t>(kRead, 0xff));
    std::vector<iovec> iovecs(kRequests);
    int completed = 0;
    for (int i = 0; i < kRequests; ++i) {
        iovecs[i] = {out[i].data(), kRead};
        IoContext::Request& request = context.begin([&completed](const IoError* failure) {
            EXPECT_EQ(failure, nullptr);
            ++completed;
        });
        context.read(request, *file, uint64_t(i) * 96 * 1024, {&iovecs[i], 1});
        context.end(request);
    }
    context.drain();
    EXPECT_EQ(completed, kRequests);
    for (int i = 0; i < kRequests; ++i) {
        size_t offset = size_t(i) * 96 * 1024;
        size_t in_file = std::min(kRead, contents.size() - offset);
        EXPECT_TRUE(std::equal(out[i].begin(), out[i].begin() + in_file, contents.begin() + offset))
            << "request " << i;
        EXPECT_TRUE(
            std::all_of(out[i].begin() + in_file, out[i].end(), [](uint8_t b) { return b == 0; }))
            << "request " << i << ": past the end of the file reads zeroes";
    }
}

TEST_F(IoContextTest, AReadPastTheEndOfTheFileReadsZeroes) {
    IoContext context;
    std::vector<uint8_t> out(8192, 0xff);
    iovec buffer{out.data(), out.size()};
    IoContext::Request& request =
        context.begin([](const IoError* failure) { EXPECT_EQ(failure, nullptr); });
    context.read(request, *file, contents.size() - 4096, {&buffer, 1});
    context.end(request);
    context.drain();
    EXPECT_TRUE(std::equal(out.begin(), out.begin() + 4096, contents.end() - 4096));
    EXPECT_EQ(std::vector<uint8_t>(out.begin() + 4096, out.end()), std::vector<uint8_t>(4096, 0));
}

TEST_F(IoContextTest, TheFirstFailureOfAnyPartIsTheRequestsAndNamesTheFile) {
    ImageFile read_only = ImageFile::open(scratch / "file", /*writable=*/false);
    IoContext context;
    std::vector<uint8_t> data(4096, 0x5a);
    iovec buffer{data.data(), data.size()};
    std::optional<std::string> error;
    bool after_ran_first = false;
    IoContext::Request& request = context.begin([&](const IoError* failure) {
        ASSERT_NE(failure, nullptr);
        error = failure->what();
    });
    context.read(request, *file, 0, {&buffer, 1});
    context.write(request, read_only, 8192, {&buffer, 1});  // EBADF
    DiskCompletion nested = context.part(request);
    context.end(request, [&] { after_ran_first = !error; });
    context.submit();
    context.wait_until([&] { return context.requests_in_flight() == 1; });
    EXPECT_FALSE(error) << "the nested part is not done yet";
    nested(nullptr);
    context.drain();
    ASSERT_TRUE(error);
    EXPECT_NE(error->find("file"), std::string::npos) << *error;
    EXPECT_NE(error->find("write"), std::string::npos) << *error;
    EXPECT_TRUE(after_ran_first) << "`after` runs before the completion";
}

TEST_F(IoContextTest, WritesAndSyncReachTheFile) {
    IoContext context;
    std::vector<uint8_t> a = pattern(2, 0, 65536);
    std::vector<uint8_t> b = pattern(3, 0, 4096);
    iovec buffers[] = {{a.data(), a.size()}, {b.data(), b.size()}};
    IoContext::Request& request =
        context.begin([](const IoError* failure) { EXPECT_EQ(failure, nullptr); });
    context.write(request, *file, 12288, buffers);
    context.sync(request, *file);
    context.end(request);
    context.drain();
    std::vector<uint8_t> back(a.size() + b.size());
    file->read(12288, back);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), back.begin()));
    EXPECT_TRUE(std::equal(b.begin(), b.end(), back.begin() + a.size()));
}

TEST(IoContext, RunAndWaitThrowsWhatTheRequestFailedWith) {
    IoContext::run_and_wait([](IoContext&, IoContext::Request&) {});  // no parts: done at once
    EXPECT_THROW(IoContext::run_and_wait([](IoContext& context, IoContext::Request& request) {
                     context.fail(request, IoError("the disk is gone"));
                 }),
                 IoError);
}

TEST(IoContext, ARequestWaitingForAPostFromAnotherThreadSleepsUntilItComes) {
    // A qcow2 write parked behind another context's allocation has no
    // operation on this ring: wait_until() must sleep, not report it stuck.
    IoContext context;
    bool done = false;
    IoContext::Request& request = context.begin([&](const IoError* failure) {
        EXPECT_EQ(failure, nullptr);
        done = true;
    });
    DiskCompletion resumed = context.part(request);
    context.expect_post();
    context.end(request);
    bool ran_on_waiting_thread = false;
    std::thread::id waiting_thread = std::this_thread::get_id();
    std::thread poster([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        context.post([&] {
            ran_on_waiting_thread = std::this_thread::get_id() == waiting_thread;
            resumed(nullptr);
        });
    });
    context.wait_until([&] { return done; });
    poster.join();
    EXPECT_TRUE(done);
    EXPECT_TRUE(ran_on_waiting_thread);
}

TEST(IoContext, WaitingWithNothingLeftAndNoPostExpectedFailsInsteadOfHanging) {
    IoContext context;
    IoContext::Request& request = context.begin([](const IoError*) {});
    DiskCompletion never = context.part(request);
    context.end(request);
    EXPECT_THROW(context.wait_until([] { return false; }), Error);
    never(nullptr);
    context.drain();
}

}  // namespace
}  // namespace vireo
