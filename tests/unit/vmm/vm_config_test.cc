#include "vmm/vm_config.h"

#include <gtest/gtest.h>

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
        "devices": {"rng": false}})",
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
}

TEST(VmConfig, DefaultsAreSmallAndSane) {
    VmConfig config = VmConfig::from_json_text(R"({"boot": {"kernel": "/k"}})", "vm.json");
    EXPECT_EQ(config.vcpus, 1u);
    EXPECT_EQ(config.memory_mib, 256u);
    EXPECT_EQ(config.console.output, VmConfig::ConsoleOutput::Stdio);
    EXPECT_TRUE(config.devices.rng);
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
}

TEST(VmConfig, RefusesUnknownFieldsAndBadJson) {
    EXPECT_NE(error_for(R"({"boot": {"kernel": "/k"}, "vcpu": 2})")
                  .find("vm.json: vcpu: unknown field"),
              std::string::npos);
    EXPECT_NE(error_for(R"({"boot": {"kernel": "/k", "initramfs": "/i"}})")
                  .find("boot.initramfs: unknown field"),
              std::string::npos);
    EXPECT_NE(error_for(R"({"boot": )").find("vm.json: not valid JSON"), std::string::npos);
    EXPECT_EQ(error_for("[1, 2]"), "vm.json: the document must be a JSON object");
}

}  // namespace
}  // namespace vireo
