#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vireo {

// Who may do what through the API. The local Unix socket is root's (admin);
// over TCP a bearer token names one of these.
enum class ApiRole { admin, read_only };

std::string_view role_name(ApiRole role);  // "admin", "read-only"
std::optional<ApiRole> parse_role(std::string_view text);

// A new token's secret: "vireo_" and 64 hex digits from the kernel's random
// source (256 bits, so a plain hash is as good as a slow one for storing it).
std::string new_token_secret();
// What the host database keeps of a secret: its SHA-256, in hex.
std::string token_hash(std::string_view secret);

}  // namespace vireo
