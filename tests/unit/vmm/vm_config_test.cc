#include "vmm/vm_config.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace vireo {
namespace {

std::string error_for(const std::string& text) {
    try {
        VmConfig::from_json_text(text, "vm.json");
    } catch (const Error& error) {
        return error.what();
    }
    return "";
}

TEST(VmConfig, ParsesAWholeDefinition) {
    VmConfig config = VmConfig::from_json_text(R"({
        "name": "web-1", "vcpus": 4, "memory_mib": 1024,
        "boot": {"kernel": "/k", "initrd": "/i", "cmdline": "console=ttyS0"},
        "console": {"output": "file", "path": "/tmp/c.log", "input": false},
        "control_socket": "/run/web-1.sock",
        "devices": {"rng": false, "poll_max_us": 0}})",
                                               "vm.json");
    EXPECT_EQ(config.name, "web-1");
    EXPECT_EQ(config.vcpus, 4u);
    EXPECT_EQ(config.memory_mib, 1024u);
    EXPECT_EQ(config.boot.kernel, "/k");
    EXPECT_EQ(config.boot.initrd, "/i");
    EXPECT_EQ(config.boot.cmdline, "console=ttyS0");
    EXPECT_EQ(config.console.output, VmConfig::ConsoleOutput::File);
    EXPECT_FALSE(config.console.input);
    EXPECT_EQ(config.control_socket, "/run/web-1.sock");
    EXPECT_FALSE(config.devices.rng);
    EXPECT_EQ(config.devices.poll_max_us, 0u);
}

TEST(VmConfig, RelativePathsInAFileAreRelativeToItsFolder) {
    auto folder =
        std::filesystem::temp_directory_path() / ("vireo-vm-folder-" + std::to_string(::getpid()));
    std::filesystem::create_directories(folder);
    std::ofstream(folder / "disk.raw").put('x');
    std::ofstream(folder / "vm.json") << R"({"boot": {"kernel": "kernel.elf", "initrd": "/abs/i"},
        "console": {"output": "file", "path": "console.log"},
        "disks": [{"path": "disk.raw"}]})";
    VmConfig config = VmConfig::from_file((folder / "vm.json").string());
    EXPECT_EQ(config.boot.kernel, (folder / "kernel.elf").string());
    EXPECT_EQ(config.boot.initrd, "/abs/i");
    EXPECT_EQ(config.console.path, (folder / "console.log").string());
    ASSERT_EQ(config.disks.size(), 1u);
    EXPECT_EQ(config.disks[0].path, (folder / "disk.raw").string());
    std::filesystem::remove_all(folder);
    EXPECT_THROW(VmConfig::from_file((folder / "vm.json").string()), Error);
}

TEST(VmConfig, PathsOfADefinitionFileHaveNoDotDot) {
    // A jailed VMM sees the files it needs, not the folders on the way to them.
    nlohmann::json document = VmConfig::in_folder(
        nlohmann::json::parse(R"({"boot": {"kernel": "/src/tests/../../build/k.elf",
            "initrd": "./i"}, "disks": [{"path": "../shared/./d.raw"}]})"),
        "/ds/vm");
    EXPECT_EQ(document["boot"]["kernel"], "/build/k.elf");
    EXPECT_EQ(document["boot"]["initrd"], "/ds/vm/i");
    EXPECT_EQ(document["disks"][0]["path"], "/ds/shared/d.raw");
}

TEST(VmConfig, DefaultsAreSmallAndSane) {
    VmConfig config = VmConfig::from_json_text(R"({"boot": {"kernel": "/k"}})", "vm.json");
    EXPECT_EQ(config.vcpus, 1u);
    EXPECT_EQ(config.memory_mib, 256u);
    EXPECT_EQ(config.console.output, VmConfig::ConsoleOutput::Stdio);
    EXPECT_TRUE(config.devices.rng);
    EXPECT_EQ(config.devices.poll_max_us, 64u);
}

TEST(VmConfig, RoundTripsThroughJson) {
    VmConfig config = VmConfig::from_json_text(
        R"({"vcpus": 2, "boot": {"kernel": "/k", "initrd": "/i"}, "control_socket": "/s"})",
        "vm.json");
    VmConfig again = VmConfig::from_json(config.to_json(), "again");
    EXPECT_EQ(again.to_json(), config.to_json());
}

TEST(VmConfig, ErrorsNameTheFileTheFieldAndWhatIsAllowed) {
    EXPECT_EQ(error_for(R"({"vcpus": 2})"),
              "vm.json: boot: missing (needs at least boot.kernel, a bzImage or PVH ELF file)");
    EXPECT_EQ(error_for(R"({"boot": {"kernel": "/k"}, "vcpus": 0})"),
              "vm.json: vcpus: 0 is out of range (1 to 64)");
    EXPECT_EQ(error_for(R"({"boot": {"kernel": "/k"}, "vcpus": 65})"),
              "vm.json: vcpus: 65 is out of range (1 to 64)");
    EXPECT_EQ(error_for(R"({"boot": {"kernel": "/k"}, "vcpus": -1})"),
              "vm.json: vcpus: must be a whole number from 1 to 64, not -1");
    EXPECT_EQ(error_for(R"({"boot": {"kernel": 7}})"),
              "vm.json: boot.kernel: must be a string, not number");
    EXPECT_EQ(error_for(R"({"boot": {"kernel": "/k"}, "console": {"output": "tty"}})"),
              "vm.json: console.output: 'tty' is not one of stdio, file, none");
    EXPECT_EQ(error_for(R"({"boot": {"kernel": "/k"}, "console": {"output": "file"}})"),
              "vm.json: console.path: missing (output 'file' needs a path)");
    EXPECT_EQ(error_for(R"({"boot": {"kernel": "/k"}, "name": "a b"})"),
              "vm.json: name: 'a b' must be 1 to 64 letters, digits, '-', '_' or '.'");
    EXPECT_EQ(error_for(R"({"boot": {"kernel": "/k"}, "devices": {"poll_max_us": 1001}})"),
              "vm.json: devices.poll_max_us: 1001 is out of range (0 to 1000)");
}

TEST(VmConfig, RefusesUnknownFieldsAndBadJson) {
    EXPECT_NE(
        error_for(R"({"boot": {"kernel": "/k"}, "vcpu": 2})").find("vm.json: vcpu: unknown field"),
        std::string::npos);
    EXPECT_NE(error_for(R"({"boot": {"kernel": "/k", "initramfs": "/i"}})")
                  .find("boot.initramfs: unknown field"),
              std::string::npos);
    EXPECT_NE(error_for(R"({"boot": )").find("vm.json: not valid JSON"), std::string::npos);
    EXPECT_EQ(error_for("[1, 2]"), "vm.json: the document must be a JSON object");
}

// Two small disk images in a folder of their own, removed afterwards.
class VmConfigDisks : public ::testing::Test {
protected:
    VmConfigDisks() {
        std::filesystem::create_directories(folder);
        for (const auto& path : {a, b}) {
            std::ofstream(path) << std::string(4096, '\0');
        }
    }
    ~VmConfigDisks() override { std::filesystem::remove_all(folder); }

    std::string with_disks(const std::string& disks) {
        return R"({"boot": {"kernel": "/k"}, "disks": )" + disks + "}";
    }

    std::filesystem::path folder =
        std::filesystem::temp_directory_path() / ("vireo-vm-config-" + std::to_string(::getpid()));
    std::string a = (folder / "a.img").string();
    std::string b = (folder / "b.qcow2").string();
};

TEST_F(VmConfigDisks, ParsesDisksInOrder) {
    VmConfig config = VmConfig::from_json_text(
        with_disks(R"([{"path": ")" + a + R"("}, {"path": ")" + b +
                   R"(", "readonly": true, "serial": "DISK-0123456789abcde", "cache": "none",)"
                   R"( "queues": 3}])"),
        "vm.json");
    ASSERT_EQ(config.disks.size(), 2u);
    EXPECT_EQ(config.disks[0].path, a);
    EXPECT_FALSE(config.disks[0].read_only);
    EXPECT_EQ(config.disks[0].serial, "");
    EXPECT_EQ(config.disks[0].cache, CacheMode::writeback);
    EXPECT_EQ(config.disks[1].path, b);
    EXPECT_TRUE(config.disks[1].read_only);
    EXPECT_EQ(config.disks[1].serial, "DISK-0123456789abcde");
    EXPECT_EQ(config.disks[1].cache, CacheMode::none);
    // Without queues, one per vCPU, as many as virtio-blk takes.
    EXPECT_EQ(config.disks[0].queue_count(2), 2u);
    EXPECT_EQ(config.disks[0].queue_count(64), VmConfig::kMaxDiskQueues);
    EXPECT_EQ(config.disks[1].queue_count(1), 3u);

    VmConfig again = VmConfig::from_json(config.to_json(), "again");
    EXPECT_EQ(again.to_json(), config.to_json());
    ASSERT_EQ(again.disks.size(), 2u);
    EXPECT_TRUE(again.disks[1].read_only);
    EXPECT_EQ(again.disks[1].serial, config.disks[1].serial);
    EXPECT_EQ(again.disks[1].cache, CacheMode::none);
    EXPECT_EQ(again.disks[0].queues, 0u);
    EXPECT_EQ(again.disks[1].queues, 3u);
    EXPECT_TRUE(VmConfig::from_json_text(with_disks("[]"), "vm.json").disks.empty());
    EXPECT_TRUE(VmConfig::from_json_text(R"({"boot": {"kernel": "/k"}})", "vm.json").disks.empty());
}

TEST_F(VmConfigDisks, ErrorsNameTheDiskAndTheField) {
    std::string missing = (folder / "nope.img").string();
    EXPECT_EQ(
        error_for(with_disks(R"([{"path": ")" + a + R"("}, {"path": ")" + missing + R"("}])")),
        "vm.json: disks[1].path: " + missing + ": no such file");
    EXPECT_EQ(
        error_for(with_disks(R"([{"path": ")" + folder.string() + R"("}])")),
        "vm.json: disks[0].path: " + folder.string() + ": not a regular file or block device");
    EXPECT_EQ(error_for(with_disks(R"([{"readonly": true}])")),
              "vm.json: disks[0].path: missing (a disk image file or block device)");
    EXPECT_EQ(
        error_for(with_disks(R"([{"path": ")" + a + R"(", "serial": "123456789012345678901"}])")),
        "vm.json: disks[0].serial: '123456789012345678901' is 21 bytes long (at most 20)");
    EXPECT_EQ(error_for(with_disks(R"([{"path": ")" + a + R"(", "serial": "caf\u00e9"}])")),
              "vm.json: disks[0].serial: 'caf\xc3\xa9' holds a character that is not printable "
              "ASCII");
    EXPECT_EQ(error_for(with_disks(R"([{"path": ")" + a + R"(", "readonly": "yes"}])")),
              "vm.json: disks[0].readonly: must be true or false, not \"yes\"");
    EXPECT_EQ(error_for(with_disks(R"([{"path": ")" + a + R"(", "cache": "unsafe"}])")),
              "vm.json: disks[0].cache: 'unsafe' is not one of writeback, none");
    EXPECT_EQ(error_for(with_disks(R"([{"path": ")" + a + R"(", "queues": 17}])")),
              "vm.json: disks[0].queues: 17 is out of range (1 to 16)");
    EXPECT_NE(error_for(with_disks(R"([{"path": ")" + a + R"(", "ro": true}])"))
                  .find("vm.json: disks[0].ro: unknown field"),
              std::string::npos);
    EXPECT_EQ(error_for(with_disks(R"({"path": ")" + a + R"("})")),
              "vm.json: disks: must be a list of disks, not object");
    EXPECT_EQ(error_for(with_disks("[7]")), "vm.json: disks[0] must be a JSON object");
    // The same file twice, even under another name.
    EXPECT_EQ(error_for(with_disks(R"([{"path": ")" + a + R"("}, {"path": ")" + folder.string() +
                                   R"(/../)" + folder.filename().string() + R"(/a.img"}])")),
              "vm.json: disks[1].path: " + folder.string() + "/../" + folder.filename().string() +
                  "/a.img is already disks[0]");
    std::string many = "[";
    for (size_t i = 0; i <= VmConfig::kMaxDisks; ++i) {
        many += std::string(i ? ", " : "") + R"({"path": ")" + a + R"("})";
    }
    EXPECT_EQ(error_for(with_disks(many + "]")), "vm.json: disks: 17 disks, at most 16");
}

std::string with_nics(const std::string& nics) {
    return R"({"boot": {"kernel": "/k"}, "nics": )" + nics + "}";
}

TEST(VmConfigNics, ParsesNicsInOrderAndKeepsADrawnMacInTheDefinition) {
    VmConfig config = VmConfig::from_json_text(
        with_nics(R"([{"tap": "vnet0", "mac": "02:76:69:0A:1b:2c"}, {"tap": "vnet1"}])"),
        "vm.json");
    ASSERT_EQ(config.nics.size(), 2u);
    EXPECT_EQ(config.nics[0].tap, "vnet0");
    EXPECT_EQ(format_mac(config.nics[0].mac), "02:76:69:0a:1b:2c");
    EXPECT_EQ(config.nics[1].tap, "vnet1");
    // Drawn from Vireo's locally administered range, unicast.
    EXPECT_EQ(config.nics[1].mac[0], 0x02);
    EXPECT_EQ(config.nics[1].mac[1], 0x76);
    EXPECT_EQ(config.nics[1].mac[2], 0x69);
    // Written back, the drawn address is what the next start uses.
    VmConfig again = VmConfig::from_json(config.to_json(), "again");
    EXPECT_EQ(again.nics[1].mac, config.nics[1].mac);
    EXPECT_EQ(again.nics[0].tap, "vnet0");
    EXPECT_EQ(again.nics[0].queues, 1u);
}

TEST(VmConfigNics, QueuePairsAreKeptInTheDefinition) {
    VmConfig config =
        VmConfig::from_json_text(with_nics(R"([{"tap": "vnet0", "queues": 4}])"), "vm.json");
    EXPECT_EQ(config.nics[0].queues, 4u);
    EXPECT_EQ(VmConfig::from_json(config.to_json(), "again").nics[0].queues, 4u);
}

TEST(VmConfigNics, ErrorsNameTheNicAndTheField) {
    EXPECT_EQ(error_for(with_nics(R"([{"mac": "02:76:69:00:00:01"}])")),
              "vm.json: nics[0].tap: '': an interface name has 1 to 15 characters");
    EXPECT_EQ(error_for(with_nics(R"([{"tap": "a/b"}])")),
              "vm.json: nics[0].tap: 'a/b': an interface name has no '/', ':' or spaces");
    EXPECT_EQ(error_for(with_nics(R"([{"tap": "t0", "mac": "02:76:69:00:00"}])")),
              "vm.json: nics[0].mac: '02:76:69:00:00' is not a MAC address (six hex bytes, as "
              "02:76:69:0a:1b:2c)");
    EXPECT_EQ(error_for(with_nics(R"([{"tap": "t0", "mac": "03:76:69:00:00:01"}])")),
              "vm.json: nics[0].mac: 03:76:69:00:00:01 is a multicast address; a vNIC needs a "
              "unicast one");
    EXPECT_EQ(error_for(with_nics(R"([{"tap": "t0"}, {"tap": "t0"}])")),
              "vm.json: nics[1].tap: t0 is already nics[0]'s");
    EXPECT_EQ(error_for(with_nics(R"([{"tap": "t0", "mac": "02:00:00:00:00:01"},
                                      {"tap": "t1", "mac": "02-00-00-00-00-01"}])")),
              "vm.json: nics[1].mac: 02:00:00:00:00:01 is already nics[0]'s");
    EXPECT_EQ(error_for(with_nics(R"([{"tap": "t0", "portgroup": "a b", "tap_fd": 5}])")),
              "vm.json: nics[0].portgroup: 'a b': a port group's name is 1 to 64 of A-Z a-z 0-9 . "
              "_ -");
    EXPECT_EQ(error_for(with_nics(R"([{"tap": "t0", "tap_fd": 2}])")),
              "vm.json: nics[0].tap_fd: 2 is out of range (3 to 2147483647)");
    EXPECT_EQ(error_for(with_nics(R"([{"tap": "t0", "queues": 0}])")),
              "vm.json: nics[0].queues: 0 is out of range (1 to 16)");
    EXPECT_NE(error_for(with_nics(R"([{"tap": "t0", "speed": 10}])"))
                  .find("vm.json: nics[0].speed: unknown field"),
              std::string::npos);
    EXPECT_EQ(error_for(with_nics("{}")), "vm.json: nics: must be a list of vNICs, not object");
}

TEST(VmConfigTest, AVnicOnAPortGroupCarriesTheTapItsLauncherHandsOver) {
    VmConfig config = VmConfig::from_json_text(
        with_nics(R"([{"tap": "vireo1n0", "portgroup": "web", "tap_fd": 7}])"), "vm.json");
    EXPECT_EQ(config.nics[0].portgroup, "web");
    EXPECT_EQ(config.nics[0].tap_fd, 7);
    VmConfig again = VmConfig::from_json(config.to_json(), "again");
    EXPECT_EQ(again.nics[0].portgroup, "web");
    EXPECT_EQ(again.nics[0].tap_fd, 7);
    EXPECT_FALSE(VmConfig::from_json_text(with_nics(R"([{"tap": "t0"}])"), "vm.json")
                     .nics[0]
                     .tap_fd.has_value());
    // Under vireod the TAP is made by name, with no fd to hand over.
    VmConfig by_name = VmConfig::from_json_text(
        with_nics(R"([{"tap": "web1n0", "portgroup": "web"}])"), "vm.json");
    EXPECT_EQ(by_name.nics[0].portgroup, "web");
    EXPECT_FALSE(by_name.nics[0].tap_fd.has_value());
    EXPECT_FALSE(config.nics[0].security.has_value());  // the guest's own filter decides

    VmConfig policed = VmConfig::from_json_text(
        with_nics(R"([{"tap": "t0", "security": {"forged_transmits": false}}])"), "vm.json");
    ASSERT_TRUE(policed.nics[0].security.has_value());
    EXPECT_EQ(
        *policed.nics[0].security,
        (SecurityPolicy{.promiscuous = false, .mac_changes = true, .forged_transmits = false}));
    EXPECT_EQ(VmConfig::from_json(policed.to_json(), "again").nics[0].security,
              policed.nics[0].security);
    EXPECT_NE(error_for(with_nics(R"([{"tap": "t0", "security": {"promiscuous": "yes"}}])"))
                  .find("nics[0].security.promiscuous: must be true or false"),
              std::string::npos);
    std::string many = "[";
    for (size_t i = 0; i <= VmConfig::kMaxNics; ++i) {
        many += std::string(i ? ", " : "") + R"({"tap": "t)" + std::to_string(i) + R"("})";
    }
    EXPECT_EQ(error_for(with_nics(many + "]")), "vm.json: nics: 9 vNICs, at most 8");
}

}  // namespace
}  // namespace vireo
