#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/tls_identity.h"

namespace vireo {

// One HTTP request to the host agent, as a handler sees it.
struct ApiRequest {
    std::string method;                        // "GET", "POST", "DELETE"...
    std::vector<std::string> path;             // "/v1/vms/web" -> {"v1", "vms", "web"}
    std::map<std::string, std::string> query;  // ?files=true
    std::string body;                          // as sent (JSON, or empty)
    bool local = false;                        // came over the Unix socket (root's)
    std::optional<std::string> bearer;         // "Authorization: Bearer X" -> X
};

struct ApiResponse {
    ApiResponse(int status_code = 200, nlohmann::json json = {})
        : status(status_code), body(std::move(json)) {}
    // Plain text instead of JSON (Prometheus' exposition format).
    static ApiResponse plain(std::string text) {
        ApiResponse response;
        response.text = std::move(text);
        return response;
    }

    int status;
    nlohmann::json body;
    std::optional<std::string> text;
};

// Answers a request; may throw ApiError (its status and message become the
// answer) or vireo::Error (500).
using ApiHandler = std::function<ApiResponse(const ApiRequest&)>;

// What serves a WebSocket once the server accepted it, on the connection's
// own thread: nothing in it runs at the same time as anything else in it.
class WebSocketSession {
public:
    virtual ~WebSocketSession() = default;
    // One message from the client.
    virtual void received(std::string_view message) = 0;
    // Asked every kPollInterval: bytes to send now (none: empty); `done` set
    // ends the session (a normal close) once they are sent.
    virtual std::string poll(bool& done) = 0;
};
// Accepts (a session) or refuses (throws ApiError, answered as HTTP) a
// request to upgrade to a WebSocket.
using WebSocketHandler = std::function<std::unique_ptr<WebSocketSession>(const ApiRequest&)>;

// HTTP/1.1 with JSON bodies, from Boost.Beast, on a Unix socket (root only:
// mode 0600) and, when asked, on TCP with TLS: one thread per connection, at
// most kMaxConnections at once, bodies up to kMaxBodyBytes (413 beyond). Every
// answer is JSON; a failure is {"error": "..."}. Who may do what is the
// handler's business: requests say where they came from and their token.
class ApiServer {
public:
    static constexpr size_t kMaxConnections = 64;
    static constexpr size_t kMaxBodyBytes = 1 << 20;
    static constexpr auto kPollInterval = std::chrono::milliseconds(50);

    ApiServer(ApiHandler handler, WebSocketHandler websocket_handler);
    ~ApiServer();

    // Listens at `socket` (a stale socket file there is replaced). Throws
    // vireo::Error naming the path when it cannot.
    void listen_unix(std::filesystem::path socket);
    // Listens on `address` ("HOST:PORT", "[::]:8443") with TLS 1.2 or later.
    // Throws vireo::Error naming the address or the files when it cannot.
    void listen_tls(const std::string& address, const TlsIdentity& identity);

    // Serves until SIGTERM or SIGINT, then returns (the socket file removed).
    void run();

    struct State;  // the listeners and their connections (api_server.cc)

private:
    std::unique_ptr<State> state_;
};

// What a handler returns for a path no route takes.
[[noreturn]] void refuse_unknown_path(const ApiRequest& request);

}  // namespace vireo
