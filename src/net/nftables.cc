#include "net/nftables.h"

#include <nftables/libnftables.h>

#include <algorithm>
#include <cctype>

#include "base/error.h"

namespace vireo {

Nftables::Nftables(bool json_output) : context_(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free) {
    if (!context_) {
        fail("nftables: cannot create a context (libnftables)");
    }
    nft_ctx_buffer_output(context_.get());
    nft_ctx_buffer_error(context_.get());
    if (json_output) {
        nft_ctx_output_set_flags(context_.get(), NFT_CTX_OUTPUT_JSON);
    }
}

Nftables::~Nftables() = default;

std::string Nftables::run(const std::string& commands, std::string_view what) {
    if (nft_run_cmd_from_buffer(context_.get(), commands.c_str()) != 0) {
        std::string error = nft_ctx_get_error_buffer(context_.get());
        error.erase(error.find_last_not_of('\n') + 1);
        fail("{}: nftables refused the rules: {}", what, error);
    }
    return nft_ctx_get_output_buffer(context_.get());
}

std::optional<std::string> Nftables::try_run(const std::string& commands) {
    if (nft_run_cmd_from_buffer(context_.get(), commands.c_str()) != 0) {
        nft_ctx_get_error_buffer(context_.get());  // consumed, so it does not pile up
        return std::nullopt;
    }
    return nft_ctx_get_output_buffer(context_.get());
}

void Nftables::check(const std::string& commands, std::string_view what) {
    nft_ctx_set_dry_run(context_.get(), true);
    try {
        run(commands, what);
    } catch (const Error&) {
        nft_ctx_set_dry_run(context_.get(), false);
        throw;
    }
    nft_ctx_set_dry_run(context_.get(), false);
}

bool fits_nft_identifier(std::string_view name) {
    return !name.empty() && std::isalpha(static_cast<unsigned char>(name[0])) &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                      c == '.';
           });
}

}  // namespace vireo
