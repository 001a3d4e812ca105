#include "vmm/seccomp_policy.h"

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace vireo {
namespace {

TEST(SeccompPolicy, LeavesOutWhatAVmmNeverDoes) {
    auto syscalls = vmm_syscalls();
    EXPECT_GT(syscalls.size(), 40u);
    for (std::string_view forbidden :
         {"execve", "execveat", "ptrace", "mount", "pivot_root", "init_module", "finit_module",
          "kexec_load", "bpf", "setuid", "process_vm_writev", "reboot"}) {
        EXPECT_EQ(std::count(syscalls.begin(), syscalls.end(), forbidden), 0) << forbidden;
    }
    for (std::string_view needed :
         {"ioctl", "io_uring_enter", "epoll_wait", "futex", "exit_group"}) {
        EXPECT_EQ(std::count(syscalls.begin(), syscalls.end(), needed), 1) << needed;
    }
}

// A confined process keeps working within the list, shows Seccomp 2 and
// NoNewPrivs 1 in its status, and dies of SIGSYS at the first call outside it.
TEST(SeccompPolicy, AConfinedProcessDiesAtAForbiddenSystemCall) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(pipe_fds[0]);
        confine_to_vmm_syscalls();
        std::ifstream status("/proc/self/status");
        std::string line, found;
        while (std::getline(status, line)) {
            if (line.starts_with("Seccomp:") || line.starts_with("NoNewPrivs:")) {
                found += line + "\n";
            }
        }
        (void)!::write(pipe_fds[1], found.data(), found.size());
        ::close(pipe_fds[1]);
        ::syscall(SYS_mount, nullptr, nullptr, nullptr, 0, nullptr);  // not a VMM's business
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    std::string seen;
    char buffer[256];
    ssize_t n;
    while ((n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0) {
        seen.append(buffer, static_cast<size_t>(n));
    }
    ::close(pipe_fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_NE(seen.find("NoNewPrivs:\t1"), std::string::npos) << seen;
    EXPECT_NE(seen.find("Seccomp:\t2"), std::string::npos) << seen;
    ASSERT_TRUE(WIFSIGNALED(status)) << "exited " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

}  // namespace
}  // namespace vireo
