#include "host/vmm_jail.h"

#include <gtest/gtest.h>

#include "base/error.h"

#include "host/vmm_cgroup.h"
#include "host/vmm_identity.h"

namespace vireo {
namespace {

VmConfig::Disk disk(std::string path, bool read_only = false) {
    VmConfig::Disk made;
    made.path = std::move(path);
    made.read_only = read_only;
    return made;
}

VmConfig echo_config() {
    VmConfig config;
    config.boot.kernel = "/srv/images/guest.elf";
    config.boot.initrd = "/srv/images/initrd.img";
    config.console.output = VmConfig::ConsoleOutput::File;
    config.console.path = "/ds/vm1/console.log";
    return config;
}

JailHostPaths host_paths() {
    return JailHostPaths{"/ds/vm1", "/run/vireo/vms/vm1", "/usr/local/bin/vireo-vmm", {"/usr"}, {}};
}

std::vector<std::string> paths_of(const std::vector<JailBind>& binds) {
    std::vector<std::string> paths;
    for (const JailBind& bind : binds) {
        paths.push_back(bind.path);
    }
    return paths;
}

TEST(JailBinds, ShowTheFoldersTheBinaryAndTheBootFilesAtTheirOwnPaths) {
    std::vector<JailBind> binds = jail_binds(echo_config(), host_paths());
    // The console log is inside the folder, the binary inside /usr: both left out.
    EXPECT_EQ(paths_of(binds),
              (std::vector<std::string>{"/ds/vm1", "/run/vireo/vms/vm1", "/srv/images/guest.elf",
                                        "/srv/images/initrd.img", "/usr"}));
    EXPECT_TRUE(binds[0].directory && binds[0].writable);
    EXPECT_TRUE(binds[1].directory && binds[1].writable);
    EXPECT_FALSE(binds[2].directory || binds[2].writable);
    EXPECT_TRUE(binds[4].directory && !binds[4].writable);
}

TEST(JailBinds, DisksOutsideTheFolderAndTheirBackingFilesAreBoundOnTheirOwn) {
    VmConfig config = echo_config();
    config.disks.push_back(disk("/ds/vm1/disk0.qcow2"));
    config.disks.push_back(disk("/ds/shared/data.raw", true));
    config.disks.push_back(disk("/ds/other/scratch.raw"));
    JailHostPaths host = host_paths();
    host.backing_files = {"/ds/templates/base.qcow2"};
    std::vector<JailBind> binds = jail_binds(config, host);
    std::vector<std::string> paths = paths_of(binds);
    EXPECT_EQ(std::count(paths.begin(), paths.end(), "/ds/vm1/disk0.qcow2"), 0);
    auto find = [&](const std::string& path) {
        auto found = std::find(paths.begin(), paths.end(), path);
        EXPECT_NE(found, paths.end()) << path;
        return binds[static_cast<size_t>(found - paths.begin())];
    };
    EXPECT_FALSE(find("/ds/shared/data.raw").writable);
    EXPECT_TRUE(find("/ds/other/scratch.raw").writable);
    EXPECT_FALSE(find("/ds/templates/base.qcow2").writable);
}

TEST(JailBinds, AWritableFileInsideAReadOnlyFolderIsBoundWritableOverIt) {
    VmConfig config = echo_config();
    config.disks.push_back(disk("/usr/share/vm/disk.raw"));
    std::vector<JailBind> binds = jail_binds(config, host_paths());
    std::vector<std::string> paths = paths_of(binds);
    auto usr = std::find(paths.begin(), paths.end(), "/usr");
    auto file = std::find(paths.begin(), paths.end(), "/usr/share/vm/disk.raw");
    ASSERT_NE(file, paths.end());
    EXPECT_LT(usr, file);  // the folder first, the file over it
    EXPECT_TRUE(binds[static_cast<size_t>(file - paths.begin())].writable);
}

TEST(JailBinds, PathsAreNormalisedAndNamedOnce) {
    VmConfig config = echo_config();
    config.boot.initrd = "/srv/images/../images/guest.elf";
    std::vector<std::string> paths = paths_of(jail_binds(config, host_paths()));
    EXPECT_EQ(std::count(paths.begin(), paths.end(), "/srv/images/guest.elf"), 1);
}

TEST(JailDevices, NetworkDevicesOnlyWithVnics) {
    VmConfig config = echo_config();
    EXPECT_EQ(jail_devices(config),
              (std::vector<std::string>{"/dev/kvm", "/dev/null", "/dev/urandom"}));
    config.nics.push_back(VmConfig::Nic{});
    std::vector<std::string> devices = jail_devices(config);
    EXPECT_NE(std::find(devices.begin(), devices.end(), "/dev/net/tun"), devices.end());
    EXPECT_NE(std::find(devices.begin(), devices.end(), "/dev/vhost-net"), devices.end());
}

TEST(VmmIdentity, EachVmHasItsOwnSlotForGood) {
    VmmSlots slots;
    EXPECT_EQ(slots.slot_of("web-1"), 0u);
    EXPECT_EQ(slots.slot_of("web-2"), 1u);
    EXPECT_EQ(slots.slot_of("web-1"), 0u);
    // A VM forgotten (deleted) does not give its slot to the next one.
    slots.slots.erase("web-2");
    EXPECT_EQ(slots.slot_of("db"), 2u);
}

TEST(VmmIdentity, UidAndGidAreTheBasePlusTheSlotWithinRange) {
    VmmIdentity identity = vmm_identity(kDefaultVmmUidBase, 7);
    EXPECT_EQ(identity.uid, kDefaultVmmUidBase + 7);
    EXPECT_EQ(identity.gid, identity.uid);
    EXPECT_THROW(vmm_identity(kDefaultVmmUidBase, kMaxVmmSlots), Error);
    EXPECT_THROW(vmm_identity(2'147'483'000, 1000), Error);
}

TEST(VmmIdentities, AreKeptAcrossRestarts) {
    std::filesystem::path dir = testing::TempDir() + "vmm-identities-test";
    std::filesystem::remove_all(dir);
    uid_t first;
    {
        VmmIdentities identities(dir, 100000);
        first = identities.of("a").uid;
        EXPECT_EQ(identities.of("b").uid, first + 1);
    }
    VmmIdentities again(dir, 100000);
    EXPECT_EQ(again.of("a").uid, first);
    EXPECT_EQ(again.of("c").uid, first + 2);
    std::filesystem::remove_all(dir);
}

TEST(VmmCgroups, UnifiedPathIsTheV2Line) {
    EXPECT_EQ(VmmCgroups::unified_path("12:pids:/a\n0::/system.slice/vireod.service\n"),
              "/system.slice/vireod.service");
    EXPECT_EQ(VmmCgroups::unified_path("0::/\n"), "/");
    EXPECT_EQ(VmmCgroups::unified_path("4:memory:/x\n"), std::nullopt);
}

}  // namespace
}  // namespace vireo
