#pragma once

namespace vireo {

// Destroying a KVM VM with an in-kernel irqchip waits for several SRCU grace
// periods (15-20 ms here), all inside the last close() of the VM fd. Like
// QEMU's -async-teardown, hand that close to a child process which holds
// nothing but the VM fd and lets it go once this process has exited: the
// VMM's own exit, and so the operator's wait, no longer includes it.
// Call after every vCPU thread has been joined. Returns once the child holds
// nothing else, so that the VMM's disk images (and their locks) and TAPs are
// free when it exits. Best effort: if the child cannot be made, the VMM simply
// pays the cost itself.
void tear_down_vm_in_background(int vm_fd);

}  // namespace vireo
