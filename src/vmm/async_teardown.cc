#include "vmm/async_teardown.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace vireo {

void tear_down_vm_in_background(int vm_fd) {
    int parent_alive[2];
    if (::pipe2(parent_alive, O_CLOEXEC) != 0) {
        return;
    }
    pid_t child = ::fork();
    if (child == 0) {
        // Only async-signal-safe calls from here: the parent is multithreaded.
        // Keep the VM fd and the pipe's read end, drop everything else (the
        // console, the control socket), so nobody waits on this process.
        int keep_low = vm_fd < parent_alive[0] ? vm_fd : parent_alive[0];
        int keep_high = vm_fd < parent_alive[0] ? parent_alive[0] : vm_fd;
        if (keep_low > 0) {
            ::syscall(SYS_close_range, 0, keep_low - 1, 0);
        }
        ::syscall(SYS_close_range, keep_low + 1, keep_high - 1, 0);
        ::syscall(SYS_close_range, keep_high + 1, ~0u, 0);
        ::prctl(PR_SET_NAME, "vireo-teardown");
        char byte;
        while (::read(parent_alive[0], &byte, 1) != 0) {
        }  // EOF: the parent has exited
        ::close(vm_fd);
        ::_exit(0);
    }
    ::close(parent_alive[0]);
    // The write end stays open (close-on-exec) until this process exits.
}

}  // namespace vireo
