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

}  // namespace
}  // namespace vireo::kvm
