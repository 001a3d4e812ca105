#include "cli/api_client.h"

#include <cstdlib>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "base/error.h"

namespace vireo::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

ApiClient::ApiClient(std::filesystem::path socket) : socket_(std::move(socket)) {}

std::filesystem::path ApiClient::default_socket() {
    if (const char* socket = std::getenv("VIREO_SOCKET"); socket && *socket) {
        return socket;
    }
    const char* run_dir = std::getenv("VIREO_RUN_DIR");
    return std::filesystem::path(run_dir && *run_dir ? run_dir : "/run/vireo") / "vireod.sock";
}

nlohmann::json ApiClient::call(std::string_view method, std::string_view target,
                               const nlohmann::json* body) const {
    asio::io_context io;
    asio::local::stream_protocol::socket stream(io);
    beast::error_code error;
    stream.connect(asio::local::stream_protocol::endpoint(socket_.string()), error);
    if (error) {
        fail(
            "cannot reach vireod at {}: {} (is vireod running? --socket or VIREO_SOCKET name "
            "another)",
            socket_.string(), error.message());
    }
    http::request<http::string_body> request{
        http::string_to_verb(beast::string_view(method.data(), method.size())),
        beast::string_view(target.data(), target.size()), 11};
    request.set(http::field::host, "vireod");
    request.set(http::field::user_agent, "vireo");
    if (body) {
        request.set(http::field::content_type, "application/json");
        request.body() = body->dump();
    }
    request.prepare_payload();
    http::write(stream, request, error);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    if (!error) {
        http::read(stream, buffer, response, error);
    }
    if (error) {
        fail("vireod at {}: {} {}: {}", socket_.string(), method, target, error.message());
    }
    nlohmann::json answer = nlohmann::json::parse(response.body(), nullptr, false);
    unsigned status = response.result_int();
    if (status < 200 || status > 299) {
        std::string message = answer.is_object() && answer.contains("error")
                                  ? answer["error"].get<std::string>()
                                  : response.body();
        fail("{}", message);
    }
    if (answer.is_discarded()) {
        fail("vireod answered {} {} with something that is not JSON", method, target);
    }
    return answer;
}

}  // namespace vireo::cli
