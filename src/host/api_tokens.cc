#include "host/api_tokens.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <span>

#include <fmt/format.h>

#include "base/error.h"

namespace vireo {
namespace {

std::string hex(std::span<const unsigned char> bytes) {
    std::string text;
    for (unsigned char byte : bytes) {
        text += fmt::format("{:02x}", byte);
    }
    return text;
}

}  // namespace

std::string_view role_name(ApiRole role) {
    return role == ApiRole::admin ? "admin" : "read-only";
}

std::optional<ApiRole> parse_role(std::string_view text) {
    if (text == "admin") {
        return ApiRole::admin;
    }
    if (text == "read-only") {
        return ApiRole::read_only;
    }
    return std::nullopt;
}

std::string new_token_secret() {
    std::array<unsigned char, 32> random;
    if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
        fail("cannot draw a token: OpenSSL's random generator failed");
    }
    return "vireo_" + hex(random);
}

std::string token_hash(std::string_view secret) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest;
    unsigned int length = 0;
    if (EVP_Digest(secret.data(), secret.size(), digest.data(), &length, EVP_sha256(), nullptr) !=
        1) {
        fail("cannot hash a token: OpenSSL's SHA-256 failed");
    }
    return hex(std::span(digest.data(), length));
}

}  // namespace vireo
