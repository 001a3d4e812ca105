#pragma once

#include <span>
#include <string_view>

namespace vireo {

// The system calls vireo-vmm makes, from its main() to its exit, on every
// path the workloads of scripts/vmm-syscalls.sh reach (boot, vCPUs, virtio
// devices and their workers, disks through io_uring, vNICs with vhost-net
// and nftables, the control socket, the asynchronous teardown).
std::span<const std::string_view> vmm_syscalls();

// Confines this process, every thread of it, to vmm_syscalls(): any other
// system call kills the whole process (SIGSYS). Sets no_new_privs. Throws
// vireo::Error when the kernel refuses the filter.
void confine_to_vmm_syscalls();

}  // namespace vireo
