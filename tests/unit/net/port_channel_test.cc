#include "net/port_channel.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "base/error.h"

namespace vireo {
namespace {

// A socket pair as vireod makes it: the VMM's end in a PortChannel, vireod's
// answered here by `answer` (nothing: no answer at all).
class PortChannelTest : public testing::Test {
protected:
    void SetUp() override {
        int pair[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
        channel_.emplace(UniqueFd(pair[0]));
        vireod_ = UniqueFd(pair[1]);
    }
    // What vireod received, after answering `answer`.
    std::string serve_once(const std::string& answer) {
        char message[128];
        ssize_t length = ::read(vireod_.get(), message, sizeof(message));
        if (!answer.empty()) {
            EXPECT_EQ(::write(vireod_.get(), answer.data(), answer.size()),
                      static_cast<ssize_t>(answer.size()));
        }
        return length > 0 ? std::string(message, static_cast<size_t>(length)) : "";
    }

    std::optional<PortChannel> channel_;
    UniqueFd vireod_;
};

const MacAddress kMac = {0x02, 0x76, 0x69, 0xaa, 0x10, 0x99};

TEST_F(PortChannelTest, ARequestIsOneMessageAndOkAcceptsIt) {
    std::string received;
    std::thread vireod([&] { received = serve_once("ok"); });
    channel_->follow_mac(1, kMac);
    vireod.join();
    EXPECT_EQ(received, "mac 1 02:76:69:aa:10:99");
    std::optional<PortChannel::Request> parsed = PortChannel::parse(received);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->nic, 1u);
    EXPECT_EQ(parsed->mac, kMac);
}

TEST_F(PortChannelTest, AVireodRefusalIsTheError) {
    std::thread vireod([&] { serve_once("refused: no table"); });
    try {
        channel_->follow_mac(0, kMac);
        ADD_FAILURE() << "not refused";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("refused: no table"), std::string::npos);
    }
    vireod.join();
}

TEST_F(PortChannelTest, AChannelNoOneAnswersFailsInsteadOfHangingOrSignalling) {
    std::thread vireod([&] { serve_once(""); });  // reads, never answers
    EXPECT_THROW(channel_->follow_mac(0, kMac), Error);
    vireod.join();
    // Its late answer is not taken for the next request's.
    ASSERT_EQ(::write(vireod_.get(), "ok", 2), 2);
    std::thread refusing([&] { serve_once("refused: late"); });
    EXPECT_THROW(channel_->follow_mac(0, kMac), Error);
    refusing.join();
    vireod_.reset();  // the vireod that made it is gone: no SIGPIPE ends the test
    EXPECT_THROW(channel_->follow_mac(0, kMac), Error);
}

TEST(PortChannelParse, RefusesWhatIsNotARequest) {
    for (const char* message : {"", "mac", "mac 1", "mac x 02:76:69:aa:10:99", "mac 1 nonsense",
                                "mac -1 02:76:69:aa:10:99", "nic 1 02:76:69:aa:10:99"}) {
        EXPECT_FALSE(PortChannel::parse(message)) << message;
    }
}

}  // namespace
}  // namespace vireo
