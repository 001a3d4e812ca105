#include "vmm/async_teardown.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace vireo {

void tear_down_vm_in_background(int vm_fd) {
    int parent_alive[2];
    if (::pipe2(parent_alive, O_CLOEXEC) != 0) {
        return;
    }
    // Closed by the child once it holds nothing but the VM fd: until then it
    // shares the VMM's disk images (and their locks), TAPs and sockets.
    int child_ready[2];
    if (::pipe2(child_ready, O_CLOEXEC) != 0) {
        ::close(parent_alive[0]);
        ::close(parent_alive[1]);
        return;
    }
    std::array<int, 3> keep = {vm_fd, parent_alive[0], child_ready[1]};
    std::sort(keep.begin(), keep.end());
    pid_t child = ::fork();
    if (child == 0) {
        // Only async-signal-safe calls from here: the parent is multithreaded.
        // Keep the VM fd and the two pipe ends, drop everything else (disks,
        // the console, the control socket), so nobody waits on this process.
        unsigned int from = 0;
        for (int fd : keep) {
            if (static_cast<unsigned int>(fd) > from) {
                ::syscall(SYS_close_range, from, fd - 1, 0);
            }
            from = static_cast<unsigned int>(fd) + 1;
        }
        ::syscall(SYS_close_range, from, ~0u, 0);
        ::close(child_ready[1]);
        ::prctl(PR_SET_NAME, "vireo-teardown");
        char byte;
        while (::read(parent_alive[0], &byte, 1) != 0) {
        }  // EOF: the parent has exited
        ::close(vm_fd);
        ::_exit(0);
    }
    ::close(parent_alive[0]);
    ::close(child_ready[1]);
    // Once the VMM has exited, its images must be free for the next user. The
    // read ends when the child closes its write end (at once if fork failed).
    char byte;
    ssize_t got;
    do {
        got = ::read(child_ready[0], &byte, 1);
    } while (got < 0 && errno == EINTR);
    ::close(child_ready[0]);
    // parent_alive's write end stays open (close-on-exec) until this process exits.
}

}  // namespace vireo
