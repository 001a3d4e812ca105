#include "vmm/machine_exit.h"

#include <gtest/gtest.h>

#include <set>

namespace vireo {
namespace {

using Reason = MachineExit::Reason;

TEST(MachineExit, GuestExitCodesMapLikeQemuDebugExit) {
    EXPECT_EQ((MachineExit{Reason::GuestExit, 0, ""}).exit_status(), 1);
    EXPECT_EQ((MachineExit{Reason::GuestExit, 1, ""}).exit_status(), 3);
    EXPECT_EQ((MachineExit{Reason::GuestExit, 0x7f, ""}).exit_status(), 255);
}

TEST(MachineExit, EveryOtherEndingHasItsOwnEvenStatus) {
    std::set<int> seen;
    for (Reason reason :
         {Reason::PoweredOff, Reason::ConfigError, Reason::Reset, Reason::Stopped,
          Reason::TripleFault, Reason::KvmFailure, Reason::VmmFailure, Reason::GuestPanic}) {
        int status = MachineExit{reason, 0, ""}.exit_status();
        EXPECT_EQ(status % 2, 0) << MachineExit{reason, 0, ""}.name();
        EXPECT_TRUE(seen.insert(status).second) << "duplicate status " << status;
    }
    EXPECT_EQ((MachineExit{Reason::PoweredOff, 0, ""}).exit_status(), 0);
}

TEST(MachineExit, AHostThatCannotRunVmsIsTwoButNotCalledBadInput) {
    MachineExit host{Reason::HostError, 0, "/dev/kvm: no such device"};
    EXPECT_EQ(host.exit_status(), (MachineExit{Reason::ConfigError, 0, ""}).exit_status());
    EXPECT_STREQ(host.name(), "host-error");
    EXPECT_EQ(host.describe(), "this host cannot run VMs: /dev/kvm: no such device");
}

TEST(MachineExit, AGuestPanicIsFourteen) {
    MachineExit exit{Reason::GuestPanic, 0, ""};
    EXPECT_EQ(exit.exit_status(), 14);
    EXPECT_STREQ(exit.name(), "guest-panic");
    EXPECT_EQ(exit.describe(), "the guest kernel panicked (pvpanic)");
}

TEST(MachineExit, DescribesWithDetail) {
    MachineExit exit{Reason::KvmFailure, 0, "emulation failure on vCPU 0"};
    EXPECT_EQ(exit.describe(), "KVM could not run the guest: emulation failure on vCPU 0");
    EXPECT_STREQ(exit.name(), "kvm-failure");
}

}  // namespace
}  // namespace vireo
