#include "base/byte_size.h"

#include <charconv>
#include <limits>

#include "base/error.h"

namespace vireo {

uint64_t parse_byte_size(std::string_view text, std::string_view what) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    std::string_view unit(end, text.data() + text.size() - end);
    uint64_t multiplier = 0;
    if (unit.empty() || unit == "B") {
        multiplier = 1;
    } else if (unit == "K" || unit == "KiB" || unit == "k") {
        multiplier = KiB;
    } else if (unit == "M" || unit == "MiB") {
        multiplier = MiB;
    } else if (unit == "G" || unit == "GiB") {
        multiplier = GiB;
    } else if (unit == "T" || unit == "TiB") {
        multiplier = 1024 * GiB;
    }
    if (ec != std::errc() || end == text.data() || multiplier == 0) {
        fail(
            "{}: '{}' is not a size (use a whole number with an optional unit K, M, G or T, "
            "e.g. 512M)",
            what, text);
    }
    if (value > std::numeric_limits<uint64_t>::max() / multiplier) {
        fail("{}: '{}' is too large", what, text);
    }
    return value * multiplier;
}

std::string format_byte_size(uint64_t bytes) {
    static constexpr struct {
        uint64_t size;
        const char* name;
    } units[] = {{1024 * GiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}};
    for (const auto& unit : units) {
        if (bytes != 0 && bytes % unit.size == 0) {
            return fmt::format("{} {}", bytes / unit.size, unit.name);
        }
    }
    return fmt::format("{} B", bytes);
}

}  // namespace vireo
