#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vireo {

// Why `name` cannot name a Linux network interface, or nullopt.
std::optional<std::string> interface_name_problem(std::string_view name);

}  // namespace vireo
