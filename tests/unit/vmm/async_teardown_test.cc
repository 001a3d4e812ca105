#include "vmm/async_teardown.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include "base/event_fd.h"

namespace vireo {
namespace {

// The teardown child must let go of everything but the VM fd before the call
// returns: a VMM that exits right after must leave its disk images (and
// their locks) free, or `stop` followed by qemu-img finds them still held.
TEST(AsyncTeardown, TheChildHoldsNothingElseOnceItReturns) {
    int wire[2];
    ASSERT_EQ(::pipe(wire), 0);
    EventFd vm;  // stands for the VM fd: the child keeps it
    tear_down_vm_in_background(vm.fd());
    ::close(wire[1]);
    // With the last write end closed, the read end reports its end at once.
    pollfd end = {wire[0], POLLIN, 0};
    EXPECT_EQ(::poll(&end, 1, 0), 1);
    EXPECT_NE(end.revents & POLLHUP, 0);
    ::close(wire[0]);
}

}  // namespace
}  // namespace vireo
