#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vireo {

using MacAddress = std::array<uint8_t, 6>;

// "02:76:69:0a:1b:2c" (colons or dashes, either case); nullopt if it is not
// six bytes of hex.
std::optional<MacAddress> parse_mac(std::string_view text);
std::string format_mac(const MacAddress& mac);
inline bool is_multicast(const MacAddress& mac) {
    return (mac[0] & 1) != 0;
}
// A new vNIC's address: unicast, locally administered, in Vireo's range
// 02:76:69 ("vi") with three random bytes, as ESX draws from 00:50:56.
MacAddress random_vnic_mac();

// The frame that tells the switches on a wire where `mac` is now (ESX's
// notify switches, QEMU's announce-self): a broadcast RARP reverse request
// from `mac` about itself (RFC 903), padded to Ethernet's 60-byte minimum.
constexpr size_t kAnnouncementBytes = 60;
std::array<uint8_t, kAnnouncementBytes> rarp_announcement(const MacAddress& mac);

}  // namespace vireo
