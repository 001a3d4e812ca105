#include "net/port_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>

#include <fmt/format.h>

#include "base/error.h"

namespace vireo {

void PortChannel::follow_mac(size_t nic, const MacAddress& mac) {
    constexpr int kAnswerTimeoutMs = 2000;
    std::lock_guard lock(mutex_);
    char answer[256];
    while (::recv(fd_.get(), answer, sizeof(answer), MSG_DONTWAIT) > 0) {
        // a late answer to a request that timed out: not this one's
    }
    std::string request = fmt::format("mac {} {}", nic, format_mac(mac));
    // MSG_NOSIGNAL: a vireod gone is an error here, not a SIGPIPE that ends the VMM.
    if (::send(fd_.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        fail_errno("vireod's port channel (restarted since this VM started?)");
    }
    pollfd ready{fd_.get(), POLLIN, 0};
    if (::poll(&ready, 1, kAnswerTimeoutMs) != 1) {
        fail("vireod did not answer on the port channel (restarted since this VM started?)");
    }
    ssize_t length = ::read(fd_.get(), answer, sizeof(answer));
    if (length <= 0) {
        fail("vireod closed the port channel (restarted since this VM started?)");
    }
    std::string_view text(answer, static_cast<size_t>(length));
    if (text != "ok") {
        fail("vireod: {}", text);
    }
}

std::optional<PortChannel::Request> PortChannel::parse(std::string_view message) {
    // "mac NIC MAC"
    if (!message.starts_with("mac ")) {
        return std::nullopt;
    }
    message.remove_prefix(4);
    size_t space = message.find(' ');
    if (space == std::string_view::npos) {
        return std::nullopt;
    }
    size_t nic = 0;
    auto [end, error] = std::from_chars(message.data(), message.data() + space, nic);
    if (error != std::errc() || end != message.data() + space) {
        return std::nullopt;
    }
    std::optional<MacAddress> mac = parse_mac(message.substr(space + 1));
    if (!mac) {
        return std::nullopt;
    }
    return Request{nic, *mac};
}

}  // namespace vireo
