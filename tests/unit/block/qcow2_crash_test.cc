// Crash safety: a writer killed with SIGKILL at 100 random points; after each
// kill `qemu-img check` finds no corruption (leaks are allowed, as in QEMU)
// and every write that completed before a completed flush reads back.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <random>
#include <sstream>

#include "block/image_factory.h"
#include "block/qcow2_image.h"
#include "block_test_support.h"

extern char** environ;

namespace vireo {
namespace {

using testing::ScratchDir;

struct Op {
    char kind;  // W, Z
    uint64_t offset;
    uint64_t length;
    uint64_t seed;
};

// Runs the writer until it has announced `lines` operations, then kills it.
std::string run_and_kill(const std::filesystem::path& image, uint64_t seed, size_t lines,
                         uint64_t cache_bytes) {
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) {
        ADD_FAILURE() << "pipe";
        return {};
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    std::string image_arg = image.string();
    std::string seed_arg = std::to_string(seed);
    std::string cache_arg = std::to_string(cache_bytes);
    std::string program = VIREO_CRASH_WRITER;
    std::vector<char*> argv = {program.data(), image_arg.data(), seed_arg.data(), cache_arg.data(),
                               nullptr};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    if (rc != 0) {
        close(pipe_fds[0]);
        ADD_FAILURE() << "cannot start " << program;
        return {};
    }
    std::string output;
    size_t seen = 0;
    char buffer[4096];
    while (seen < lines) {
        ssize_t n = read(pipe_fds[0], buffer, sizeof(buffer));
        if (n <= 0) {
            break;
        }
        for (ssize_t i = 0; i < n; ++i) {
            seen += buffer[i] == '\n';
        }
        output.append(buffer, static_cast<size_t>(n));
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    // What it announced between our last read and the kill: it may have done it.
    for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) {
        output.append(buffer, static_cast<size_t>(n));
    }
    close(pipe_fds[0]);
    EXPECT_TRUE(WIFSIGNALED(status)) << "the writer stopped by itself:\n" << output;
    return output;
}

TEST(Qcow2Crash, SigkillAtRandomPointsLosesNoFlushedWriteAndCorruptsNothing) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    constexpr uint64_t kSize = 16 << 20;
    std::mt19937_64 random(20240501);
    for (int iteration = 0; iteration < 100; ++iteration) {
        SCOPED_TRACE(iteration);
        // A few images in turn, each carrying the previous crashes' state.
        uint32_t cluster = iteration % 3 == 0 ? 4096 : iteration % 3 == 1 ? 65536 : 512;
        auto path = dir / ("crash" + std::to_string(cluster) + ".qcow2");
        if (!std::filesystem::exists(path)) {
            create_image(path, testing::qcow2_options(kSize, cluster));
        }
        // A small cache makes dirty L2 tables and refcount blocks get evicted.
        uint64_t cache = iteration % 2 == 0 ? 16 * 1024 : 1 << 20;
        std::string output = run_and_kill(path, random(), 1 + random() % 300, cache);

        // The killed process's io_uring may hold the file (and so its lock)
        // for a moment after the kill.
        testing::CommandResult check;
        for (int attempt = 0; attempt < 200; ++attempt) {
            check = testing::run_command("qemu-img check " + testing::quoted(path));
            if (check.output.find("lock") == std::string::npos) {
                break;
            }
            usleep(10000);
        }
        // 0: clean, 3: leaked clusters only; 2 would be corruption.
        ASSERT_TRUE(check.status == 0 || check.status == 3) << check.output;
        ASSERT_EQ(check.output.find("ERROR"), std::string::npos) << check.output;

        std::vector<Op> ops;
        size_t flushed = 0;
        std::istringstream lines(output);
        std::string line;
        while (std::getline(lines, line)) {
            if (lines.eof() && output.back() != '\n') {
                break;  // a line cut by the kill
            }
            std::istringstream fields(line);
            Op op{};
            fields >> op.kind;
            if (op.kind == 'F') {
                flushed = ops.size();
                continue;
            }
            fields >> op.offset >> op.length >> op.seed;
            ops.push_back(op);
        }
        std::vector<uint8_t> expected(kSize);
        std::vector<bool> known(kSize);
        for (size_t i = 0; i < flushed; ++i) {
            const Op& op = ops[i];
            auto data = op.kind == 'W' ? testing::pattern(op.seed, op.offset, op.length)
                                       : std::vector<uint8_t>(op.length);
            std::copy(data.begin(), data.end(),
                      expected.begin() + static_cast<ptrdiff_t>(op.offset));
            std::fill_n(known.begin() + static_cast<ptrdiff_t>(op.offset), op.length, true);
        }
        // What was announced after the last flush may or may not have landed.
        for (size_t i = flushed; i < ops.size(); ++i) {
            std::fill_n(known.begin() + static_cast<ptrdiff_t>(ops[i].offset), ops[i].length,
                        false);
        }
        auto image = open_image(path, testing::read_only());
        std::vector<uint8_t> actual(kSize);
        image->read(0, actual);
        for (uint64_t at = 0; at < kSize; ++at) {
            if (known[at] && actual[at] != expected[at]) {
                FAIL() << "flushed byte at " << at << " lost after the kill (" << flushed
                       << " flushed operations of " << ops.size() << ")";
            }
        }
    }
    // A read-write open after the crash rebuilds the refcounts: no leaks left.
    for (uint32_t cluster : {512u, 4096u, 65536u}) {
        auto path = dir / ("crash" + std::to_string(cluster) + ".qcow2");
        EXPECT_TRUE(image_info(path).dirty);
        open_image(path).reset();
        EXPECT_FALSE(image_info(path).dirty);
        std::string out = testing::qemu_img("check " + testing::quoted(path));
        EXPECT_NE(out.find("No errors were found"), std::string::npos) << out;
        EXPECT_EQ(out.find("leaked"), std::string::npos) << out;
    }
}

}  // namespace
}  // namespace vireo
