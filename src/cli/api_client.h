#pragma once

#include <filesystem>
#include <string_view>

#include <nlohmann/json.hpp>

namespace vireo::cli {

// A client of vireod's REST API on its Unix socket: --socket, else
// $VIREO_SOCKET, else $VIREO_RUN_DIR/vireod.sock, else /run/vireo/vireod.sock.
class ApiClient {
public:
    explicit ApiClient(std::filesystem::path socket);
    static std::filesystem::path default_socket();

    // One request; returns the answer's JSON body. Throws vireo::Error with
    // vireod's own message for an answer that is not 2xx, and a hint to start
    // vireod when nothing listens.
    nlohmann::json call(std::string_view method, std::string_view target,
                        const nlohmann::json* body = nullptr) const;

private:
    std::filesystem::path socket_;
};

}  // namespace vireo::cli
