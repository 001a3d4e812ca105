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

namespace vireo {

// One HTTP request to the host agent, as a handler sees it.
struct ApiRequest {
    std::string method;                        // "GET", "POST", "DELETE"...
    std::vector<std::string> path;             // "/v1/vms/web" -> {"v1", "vms", "web"}
    std::map<std::string, std::string> query;  // ?files=true
    std::string body;                          // as sent (JSON, or empty)
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

// HTTP/1.1 with JSON bodies on a Unix socket (root only: mode 0600), from
// Boost.Beast: one thread per connection, at most kMaxConnections at once,
// bodies up to kMaxBodyBytes (413 beyond). Every answer is JSON; a failure is
// {"error": "..."}.
class ApiServer {
public:
    static constexpr size_t kMaxConnections = 64;
    static constexpr size_t kMaxBodyBytes = 1 << 20;

    // Listens at `socket` (a stale socket file there is replaced). Throws
    // vireo::Error naming the path when it cannot.
    ApiServer(std::filesystem::path socket, ApiHandler handler);
    ~ApiServer();

    // Serves until SIGTERM or SIGINT, then returns (the socket file removed).
    void run();

    struct State;  // the listener and its connections (api_server.cc)

private:
    std::unique_ptr<State> state_;
};

// What a handler returns for a path no route takes.
[[noreturn]] void refuse_unknown_path(const ApiRequest& request);

}  // namespace vireo
