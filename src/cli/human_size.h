#pragma once

#include <cstdint>
#include <string>

namespace vireo::cli {

// A size for people to read: "812 B", "3.4 MiB", "250.0 GiB" (binary units,
// one decimal from KiB up). Exact sizes for machines go in --json as bytes.
std::string human_size(uint64_t bytes);

}  // namespace vireo::cli
