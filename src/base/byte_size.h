#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vireo {

inline constexpr uint64_t KiB = 1024;
inline constexpr uint64_t MiB = 1024 * KiB;
inline constexpr uint64_t GiB = 1024 * MiB;

// Parses "512", "512M", "4G", "64MiB", "1.5G" is refused. Throws vireo::Error
// naming `what` (the option or field) and the accepted forms.
uint64_t parse_byte_size(std::string_view text, std::string_view what);

// "4 GiB", "512 MiB", "3000 B": the largest unit that divides exactly.
std::string format_byte_size(uint64_t bytes);

}  // namespace vireo
