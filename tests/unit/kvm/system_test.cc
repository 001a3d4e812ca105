#include "kvm/system.h"

#include <gtest/gtest.h>

#include <string>

#include "base/error.h"

namespace vireo::kvm {
namespace {

std::string open_error(const std::string& path) {
    try {
        System::open(path);
    } catch (const Error& error) {
        return error.what();
    }
    return "";
}

TEST(KvmSystem, AMissingDeviceIsOneLineNamingIt) {
    std::string message = open_error("/nonexistent/kvm");
    EXPECT_NE(message.find("/nonexistent/kvm: no such device"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(KvmSystem, ADeviceThatIsNotKvmIsRefused) {
    // /dev/null opens but answers no KVM ioctl.
    std::string message = open_error("/dev/null");
    EXPECT_NE(message.find("/dev/null: KVM API version"), std::string::npos) << message;
}

TEST(KvmSystem, HardwareVirtualizationIsTheVmxOrSvmFlag) {
    EXPECT_TRUE(System::cpu_has_hardware_virtualization(
        "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx smx est\n\nprocessor\t: 1\n"));
    EXPECT_TRUE(System::cpu_has_hardware_virtualization("flags\t\t: fpu svm lm\n"));
    // A cloud VM's CPU running a software-assisted KVM (PVM): no vmx, no svm;
    // "vmx" as part of a longer flag or on another line does not count.
    EXPECT_FALSE(System::cpu_has_hardware_virtualization(
        "model name\t: vmx svm\nflags\t\t: fpu hypervisor vmx_ept svmx lm\n"));
    EXPECT_FALSE(System::cpu_has_hardware_virtualization(""));
    EXPECT_FALSE(System::cpu_has_hardware_virtualization("flags without a colon vmx"));
}

}  // namespace
}  // namespace vireo::kvm
