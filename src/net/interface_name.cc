#include "net/interface_name.h"

#include <linux/if.h>

#include <fmt/format.h>

namespace vireo {

std::optional<std::string> interface_name_problem(std::string_view name) {
    if (name.empty() || name.size() >= IFNAMSIZ) {
        return fmt::format("'{}': an interface name has 1 to {} characters", name, IFNAMSIZ - 1);
    }
    if (name == "." || name == ".." || name.find_first_of("/: \t\n") != std::string_view::npos) {
        return fmt::format("'{}': an interface name has no '/', ':' or spaces", name);
    }
    return std::nullopt;
}

}  // namespace vireo
