#include "net/persistent_tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <gtest/gtest.h>

#include "base/error.h"

namespace vireo {
namespace {

constexpr TapOwner kVm{2000000007, 2000000007};

InterfaceOwnership persistent_tap_of(std::optional<uid_t> owner) {
    return InterfaceOwnership{true, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_PERSIST, owner, owner};
}

TEST(PersistentTapTest, ReadsSysfsIds) {
    EXPECT_EQ(parse_tun_id("-1\n", "owner"), std::nullopt);
    EXPECT_EQ(parse_tun_id("2000000007\n", "owner"), 2000000007u);
    EXPECT_EQ(parse_tun_id("0", "owner"), 0u);
    EXPECT_THROW(parse_tun_id("", "owner"), Error);
    try {
        parse_tun_id("x1\n", "/sys/class/net/t0/owner");
        FAIL();
    } catch (const Error& error) {
        EXPECT_STREQ(error.what(), "/sys/class/net/t0/owner: 'x1' is neither -1 nor a uid/gid");
    }
}

TEST(PersistentTapTest, OnlyAPersistentTapOfTheSameOwnerIsTakenOver) {
    EXPECT_EQ(foreign_tap_problem("t0", persistent_tap_of(kVm.uid), kVm), std::nullopt);
    EXPECT_EQ(foreign_tap_problem("t0", persistent_tap_of(2000000008), kVm),
              "tap t0: a TAP of that name exists and belongs to someone else (owned by uid "
              "2000000008)");
    EXPECT_EQ(foreign_tap_problem("t0", persistent_tap_of(std::nullopt), kVm),
              "tap t0: a TAP of that name exists and belongs to someone else (owned by no one)");
    InterfaceOwnership held = persistent_tap_of(kVm.uid);
    held.flags &= ~IFF_PERSIST;
    EXPECT_EQ(foreign_tap_problem("t0", held, kVm),
              "tap t0: a TAP of that name exists and belongs to someone else (owned by uid "
              "2000000007, held open by a process)");
    EXPECT_EQ(foreign_tap_problem("eth0", InterfaceOwnership{}, kVm),
              "tap eth0: an interface of that name exists and is not a TAP");
    InterfaceOwnership tun = persistent_tap_of(kVm.uid);
    tun.flags = IFF_TUN | IFF_PERSIST;
    EXPECT_EQ(foreign_tap_problem("tun0", tun, kVm),
              "tap tun0: an interface of that name exists and is not a TAP");
}

// The kernel's side: a TAP made for an owner, which that owner alone may
// attach to without CAP_NET_ADMIN, deleted again. Needs root and /dev/net/tun.
class PersistentTapKernelTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0 || ::access("/dev/net/tun", R_OK | W_OK) != 0) {
            GTEST_SKIP() << "needs root and /dev/net/tun";
        }
        name_ = "vptap" + std::to_string(::getpid() % 100000);
    }
    void TearDown() override {
        if (!name_.empty()) {
            try {
                delete_persistent_tap(name_);
            } catch (const Error&) {
            }
        }
    }
    // What a VMM does with its TAP, as `who` with no capabilities, in a
    // child: attach two queues, set the header size and offloads, detach and
    // attach a queue. /dev/net/tun is opened first, as root: the jail gives
    // the VMM a node of its own, and the kernel checks the TAP's owner at
    // TUNSETIFF. Its exit status: 0 when all of it worked, else the step.
    int as_unprivileged(TapOwner who) const {
        int queues[2] = {::open("/dev/net/tun", O_RDWR | O_CLOEXEC),
                         ::open("/dev/net/tun", O_RDWR | O_CLOEXEC)};
        pid_t child = ::fork();
        if (child == 0) {
            if (::syscall(SYS_setgroups, 0, nullptr) != 0 ||
                ::syscall(SYS_setresgid, who.gid, who.gid, who.gid) != 0 ||
                ::syscall(SYS_setresuid, who.uid, who.uid, who.uid) != 0) {
                ::_exit(10);
            }
            for (int queue : queues) {
                ifreq request{};
                std::memcpy(request.ifr_name, name_.data(), name_.size());
                request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
                if (::ioctl(queue, TUNSETIFF, &request) != 0) {
                    ::_exit(1);
                }
                int header_bytes = 12;
                if (::ioctl(queue, TUNSETVNETHDRSZ, &header_bytes) != 0) {
                    ::_exit(2);
                }
            }
            if (::ioctl(queues[0], TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) != 0) {
                ::_exit(3);
            }
            for (short change : {IFF_DETACH_QUEUE, IFF_ATTACH_QUEUE}) {
                ifreq request{};
                request.ifr_flags = change;
                if (::ioctl(queues[1], TUNSETQUEUE, &request) != 0) {
                    ::_exit(4);
                }
            }
            ::_exit(0);
        }
        ::close(queues[0]);
        ::close(queues[1]);
        int status = 0;
        ::waitpid(child, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    }

    std::string name_;
};

TEST_F(PersistentTapKernelTest, MadeForItsOwnerUpAndPersistentUntilDeleted) {
    create_persistent_tap(name_, true, kVm);
    std::optional<InterfaceOwnership> found = read_interface_ownership(name_);
    ASSERT_TRUE(found.has_value());
    EXPECT_TRUE(found->tun);
    EXPECT_EQ(found->flags & (IFF_TAP | IFF_VNET_HDR | IFF_MULTI_QUEUE | IFF_PERSIST),
              unsigned{IFF_TAP | IFF_VNET_HDR | IFF_MULTI_QUEUE | IFF_PERSIST});
    EXPECT_EQ(found->owner, kVm.uid);
    EXPECT_EQ(found->group, kVm.gid);
    EXPECT_EQ(foreign_tap_problem(name_, *found, kVm), std::nullopt);
    auto flags = std::filesystem::path("/sys/class/net") / name_ / "flags";
    EXPECT_TRUE(std::filesystem::exists(flags));
    // A second creation of the same name fails rather than attaching.
    EXPECT_THROW(create_persistent_tap(name_, true, kVm), Error);
    // Its owner attaches and drives its queues without capabilities; another
    // unprivileged uid may not attach.
    EXPECT_EQ(as_unprivileged(kVm), 0);
    EXPECT_EQ(as_unprivileged({kVm.uid + 1, kVm.gid + 1}), 1);
    // It outlived its owner's queues.
    EXPECT_TRUE(read_interface_ownership(name_).has_value());

    EXPECT_TRUE(delete_persistent_tap(name_));
    EXPECT_EQ(read_interface_ownership(name_), std::nullopt);
    EXPECT_FALSE(delete_persistent_tap(name_));
}

}  // namespace
}  // namespace vireo
