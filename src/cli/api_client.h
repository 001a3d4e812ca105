#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace vireo::cli {

// Where vireod is and how to prove who we are, from the command line or the
// environment (as govc's GOVC_URL): the local Unix socket by default, or a
// remote host over TLS with a token.
struct ApiTarget {
    std::string socket;     // --socket, $VIREO_SOCKET, $VIREO_RUN_DIR/vireod.sock, /run/vireo/...
    std::string host;       // --host / $VIREO_HOST: https://NAME[:PORT] (8443 by default)
    std::string token;      // --token / $VIREO_TOKEN
    std::string ca_cert;    // --ca-cert / $VIREO_CA_CERT: trust this certificate (PEM)
    bool insecure = false;  // --insecure / $VIREO_INSECURE=1: no certificate check
};
// Adds --socket, --host, --token, --ca-cert and --insecure to `command`.
void add_target_options(CLI::App* command, ApiTarget& target);

// A client of vireod's REST API.
class ApiClient {
public:
    // Throws vireo::Error for a --host that is not an https:// URL.
    explicit ApiClient(const ApiTarget& target);

    // One request; returns the answer's JSON body. Throws vireo::Error with
    // vireod's own message for an answer that is not 2xx, and a hint to start
    // vireod when nothing listens.
    nlohmann::json call(std::string_view method, std::string_view target,
                        const nlohmann::json* body = nullptr) const;

    // Opens a WebSocket at `target` and runs until vireod closes it or
    // `next_input` says to stop: what vireod sends goes to `on_output`;
    // `input_fd` (a terminal or pipe) is read and each chunk passed through
    // `next_input`, which returns the bytes to send and sets `stop` to end.
    void websocket(std::string_view target, int input_fd,
                   const std::function<std::string(std::string_view, bool& stop)>& next_input,
                   const std::function<void(std::string_view)>& on_output) const;

    // What error messages call this vireod: its socket or its URL.
    const std::string& where() const { return where_; }

private:
    ApiTarget target_;
    std::string where_;
    std::string server_name_;  // remote: the host name to check the certificate for
    std::string port_;
};

}  // namespace vireo::cli
