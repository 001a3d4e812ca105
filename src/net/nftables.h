#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct nft_ctx;

namespace vireo {

// A libnftables context: nft's command language, each buffer one
// transaction (all of it applies, or none). Not thread-safe.
class Nftables {
public:
    // Throws vireo::Error. With `json_output`, listings come as nft's JSON.
    explicit Nftables(bool json_output = false);
    ~Nftables();
    Nftables(const Nftables&) = delete;
    Nftables& operator=(const Nftables&) = delete;

    // Runs `commands` as one transaction and returns what nft printed; throws
    // vireo::Error "WHAT: nftables refused the rules: ...".
    std::string run(const std::string& commands, std::string_view what);
    // The same, for what may fail (the listing of a table that may not
    // exist): nullopt instead of an error.
    std::optional<std::string> try_run(const std::string& commands);
    // Whether the kernel would take `commands`, without applying them; throws
    // like run() when it would not.
    void check(const std::string& commands, std::string_view what);

private:
    std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> context_;
};

// Whether `name` can be an nft identifier: a table's name is a bare one, so
// an interface name outside these characters cannot be part of it (Vireo's
// own never are).
bool fits_nft_identifier(std::string_view name);

}  // namespace vireo
