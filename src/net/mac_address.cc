#include "net/mac_address.h"

#include <sys/random.h>

#include <algorithm>

#include <fmt/format.h>

#include "base/error.h"

namespace vireo {
namespace {

std::optional<uint8_t> hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return static_cast<uint8_t>(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return static_cast<uint8_t>(c - 'a' + 10);
    }
    if (c >= 'A' && c <= 'F') {
        return static_cast<uint8_t>(c - 'A' + 10);
    }
    return std::nullopt;
}

}  // namespace

std::optional<MacAddress> parse_mac(std::string_view text) {
    if (text.size() != 17) {
        return std::nullopt;
    }
    char separator = text[2];
    if (separator != ':' && separator != '-') {
        return std::nullopt;
    }
    MacAddress mac{};
    for (size_t i = 0; i < mac.size(); ++i) {
        size_t at = i * 3;
        if (i > 0 && text[at - 1] != separator) {
            return std::nullopt;
        }
        auto high = hex_digit(text[at]);
        auto low = hex_digit(text[at + 1]);
        if (!high || !low) {
            return std::nullopt;
        }
        mac[i] = static_cast<uint8_t>(*high << 4 | *low);
    }
    return mac;
}

std::string format_mac(const MacAddress& mac) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                       mac[4], mac[5]);
}

MacAddress random_vnic_mac() {
    MacAddress mac = {0x02, 0x76, 0x69, 0, 0, 0};
    if (::getrandom(mac.data() + 3, 3, 0) != 3) {
        fail_errno("cannot draw a MAC address (getrandom)");
    }
    return mac;
}

std::array<uint8_t, kAnnouncementBytes> rarp_announcement(const MacAddress& mac) {
    std::array<uint8_t, kAnnouncementBytes> frame{};
    std::fill_n(frame.begin(), 6, 0xff);
    std::copy(mac.begin(), mac.end(), frame.begin() + 6);
    constexpr std::array<uint8_t, 10> kRarpRequest = {
        0x80, 0x35,  // ethertype RARP
        0x00, 0x01,  // Ethernet
        0x08, 0x00,  // IPv4
        6,    4,     // address lengths
        0x00, 0x03,  // reverse request
    };
    std::copy(kRarpRequest.begin(), kRarpRequest.end(), frame.begin() + 12);
    // Sender and target hardware addresses are the MAC; the IPv4 ones 0.
    std::copy(mac.begin(), mac.end(), frame.begin() + 22);
    std::copy(mac.begin(), mac.end(), frame.begin() + 32);
    return frame;
}

}  // namespace vireo
