#include "block/image_lock.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/error.h"
#include "block/image_factory.h"
#include "block_test_support.h"

namespace vireo {
namespace {

using testing::quoted;
using testing::ScratchDir;

std::string open_error(const std::filesystem::path& path, const OpenOptions& options) {
    try {
        open_image(path, options);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(ImageLock, TwoWritersExcludeEachOtherAndTheErrorNamesThePid) {
    ScratchDir dir;
    create_image(dir / "a.qcow2", testing::qcow2_options(1 << 20));
    auto writer = open_image(dir / "a.qcow2");
    std::string error = open_error(dir / "a.qcow2", {});
    EXPECT_EQ(error, "disk " + (dir / "a.qcow2").string() + ": in use by another process (pid " +
                         std::to_string(getpid()) + ")");
    // Nor may anyone read it while it is written.
    EXPECT_NE(open_error(dir / "a.qcow2", testing::read_only()).find("in use"), std::string::npos);
    // Inspection without a lock, like qemu-img -U, still works.
    OpenOptions unlocked = testing::read_only();
    unlocked.lock = false;
    EXPECT_EQ(open_error(dir / "a.qcow2", unlocked), "");
    writer.reset();
    EXPECT_EQ(open_error(dir / "a.qcow2", {}), "");
}

TEST(ImageLock, ReadersShareABackingFileThatNoWriterMayOpen) {
    ScratchDir dir;
    create_image(dir / "base.qcow2", testing::qcow2_options(1 << 20));
    create_image(dir / "clone1.qcow2", testing::qcow2_options(0, 65536, "base.qcow2"));
    create_image(dir / "clone2.qcow2", testing::qcow2_options(0, 65536, "base.qcow2"));
    // Two linked clones run at once on one base.
    auto vm1 = open_image(dir / "clone1.qcow2");
    auto vm2 = open_image(dir / "clone2.qcow2");
    EXPECT_NE(open_error(dir / "base.qcow2", {}).find("in use by another process"),
              std::string::npos);
}

TEST(ImageLock, QemuAndVireoExcludeEachOther) {
    SKIP_WITHOUT_QEMU_IMG();
    ScratchDir dir;
    auto path = dir / "a.qcow2";
    create_image(path, testing::qcow2_options(1 << 20));
    {
        auto writer = open_image(path);
        testing::CommandResult info = testing::run_command("qemu-img info " + quoted(path));
        EXPECT_NE(info.status, 0);
        EXPECT_NE(info.output.find("lock"), std::string::npos) << info.output;
        EXPECT_EQ(testing::run_command("qemu-img info -U " + quoted(path)).status, 0);
    }
    // qemu-io holds the image for writing for a while. Its answer to the read says it has the
    // image open (and locked); only then does Vireo try, once: polling with Vireo's own opens
    // would take the lock while qemu-io starts and make qemu-io's open fail instead.
    int answer[2];
    ASSERT_EQ(pipe(answer), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(answer[1], STDOUT_FILENO);
        close(answer[0]);
        // stdbuf: qemu-io's answers would wait in a full stdio buffer on a pipe. Its sleep is
        // in milliseconds; the test kills it long before.
        execlp("stdbuf", "stdbuf", "-oL", "qemu-io", "-c", "read 0 512", "-c", "sleep 600000",
               path.c_str(), nullptr);
        _exit(127);
    }
    close(answer[1]);
    std::string said;
    char buffer[256];
    ssize_t got;
    while (said.find("read 512/512") == std::string::npos &&
           (got = read(answer[0], buffer, sizeof buffer)) > 0)
        said.append(buffer, static_cast<size_t>(got));
    close(answer[0]);
    std::string error = open_error(path, {});
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    EXPECT_EQ(error, "disk " + path.string() + ": in use by another process (pid " +
                         std::to_string(pid) + ")");
}

}  // namespace
}  // namespace vireo
