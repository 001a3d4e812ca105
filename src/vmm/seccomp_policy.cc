#include "vmm/seccomp_policy.h"

#include <seccomp.h>

#include <iterator>
#include <memory>
#include <vector>

#include "base/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define VIREO_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VIREO_SANITIZED 1
#endif
#endif
#ifdef VIREO_SANITIZED
#include <sanitizer/lsan_interface.h>
#endif

namespace vireo {
namespace {

// scripts/vmm-syscalls.sh's output (Debian 12, x86-64, 2026-12-05), less
// execve (the VMM never runs another program), plus epoll_pwait2 (a device
// worker's nap on shared CPUs, which the script's VMs may not take).
constexpr std::string_view kTraced[] = {
    "accept4",
    "access",
    "arch_prctl",
    "bind",
    "brk",
    "clone",
    "clone3",
    "close",
    "close_range",
    "connect",
    "dup2",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd2",
    "exit",
    "exit_group",
    "fallocate",
    "fcntl",
    "fdatasync",
    "ftruncate",
    "futex",
    "getcwd",
    "getegid",
    "geteuid",
    "getgid",
    "getpid",
    "getppid",
    "getrandom",
    "gettid",
    "getuid",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioctl",
    "listen",
    "lseek",
    "madvise",
    "mincore",
    "mmap",
    "mprotect",
    "munmap",
    "newfstatat",
    "openat",
    "pipe2",
    "poll",
    "prctl",
    "pread64",
    "prlimit64",
    "pwrite64",
    "read",
    "readlink",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_getaffinity",  // added after that trace: whether device workers poll
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "signalfd4",
    "socket",
    "tgkill",
    "unlink",
    "wait4",
    "write",
};
// The calls of paths those workloads do not reach: the vectored and
// synchronous I/O fallbacks (a short read at an image's end, flushes, locks,
// statx for O_DIRECT alignment), netlink answers (nftables, rtnetlink),
// timekeeping where the vDSO cannot serve it, sleeps, a system call restarted
// after a signal, realloc's mremap.
constexpr std::string_view kNotTraced[] = {
    "clock_gettime", "clock_nanosleep", "fstatfs",
    "fsync",         "gettimeofday",    "getdents64",
    "kill",          "mremap",          "nanosleep",
    "preadv",        "pwritev",         "readv",
    "recvfrom",      "recvmsg",         "restart_syscall",
    "sched_yield",   "sendmsg",         "setsockopt",
    "getsockname",   "shutdown",        "socketpair",
    "statx",         "writev",          "flock",
};

// A sanitizer build's runtime needs more (its reports read /proc, its
// allocator sizes itself).
#ifdef VIREO_SANITIZED
constexpr std::string_view kSanitizerSyscalls[] = {"ptrace",
                                                   "wait4",
                                                   "waitid",
                                                   "getdents64",
                                                   "sched_getaffinity",
                                                   "sigaltstack",
                                                   "prctl",
                                                   "readlink",
                                                   "readlinkat",
                                                   "prlimit64",
                                                   "getrlimit",
                                                   "setrlimit",
                                                   "process_vm_readv",
                                                   "pipe2",
                                                   "clone",
                                                   "clone3",
                                                   "rt_sigaction",
                                                   "kill",
                                                   "tgkill",
                                                   "openat",
                                                   "newfstatat",
                                                   "statx",
                                                   "uname",
                                                   "sched_yield"};
#else
constexpr std::span<const std::string_view> kSanitizerSyscalls;
#endif

}  // namespace

std::span<const std::string_view> vmm_syscalls() {
    static const std::vector<std::string_view> all = [] {
        std::vector<std::string_view> names(std::begin(kTraced), std::end(kTraced));
        names.insert(names.end(), std::begin(kNotTraced), std::end(kNotTraced));
        return names;
    }();
    return all;
}

void confine_to_vmm_syscalls() {
    std::unique_ptr<void, decltype(&seccomp_release)> filter(seccomp_init(SCMP_ACT_KILL_PROCESS),
                                                             &seccomp_release);
    if (!filter) {
        fail("seccomp: cannot create a filter");
    }
    // Every thread, also those started before (none should be).
    if (seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_TSYNC, 1) != 0) {
        fail("seccomp: this kernel cannot apply a filter to every thread");
    }
    std::vector<std::string_view> allowed(vmm_syscalls().begin(), vmm_syscalls().end());
    allowed.insert(allowed.end(), std::begin(kSanitizerSyscalls), std::end(kSanitizerSyscalls));
    for (std::string_view name : allowed) {
        int number = seccomp_syscall_resolve_name(std::string(name).c_str());
        if (number == __NR_SCMP_ERROR) {
            continue;  // not a system call of this architecture
        }
        if (int rc = seccomp_rule_add(filter.get(), SCMP_ACT_ALLOW, number, 0); rc != 0) {
            fail("seccomp: cannot allow {}: error {}", name, -rc);
        }
    }
#ifdef VIREO_SANITIZED
    // LeakSanitizer's check at exit runs in a cloned tracer process that the
    // filter would kill, leaving the VMM waiting for it forever: check now,
    // which skips the check at exit.
    __lsan_do_leak_check();
#endif
    if (int rc = seccomp_load(filter.get()); rc != 0) {
        fail("seccomp: the kernel refused the filter: error {}", -rc);
    }
}

}  // namespace vireo
