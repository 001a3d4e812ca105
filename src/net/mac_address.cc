#include "net/mac_address.h"

#include <sys/random.h>

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

}  // namespace vireo
