#include "host/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <array>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "host/api_error.h"

namespace vireo {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = asio::local::stream_protocol;

struct ApiServer::State {
    std::filesystem::path socket;
    ApiHandler handler;
    asio::io_context io;
    Local::acceptor acceptor{io};
    std::atomic<size_t> connections{0};
};

namespace {

// "/v1/vms/web?files=true" -> path segments and query parameters.
void split_target(std::string_view target, ApiRequest& request) {
    std::string_view path = target.substr(0, target.find('?'));
    std::string_view query =
        target.find('?') == std::string_view::npos ? "" : target.substr(target.find('?') + 1);
    size_t start = 0;
    while (start < path.size()) {
        size_t end = path.find('/', start);
        end = end == std::string_view::npos ? path.size() : end;
        if (end > start) {
            request.path.emplace_back(path.substr(start, end - start));
        }
        start = end + 1;
    }
    while (!query.empty()) {
        std::string_view pair = query.substr(0, query.find('&'));
        query = pair.size() == query.size() ? "" : query.substr(pair.size() + 1);
        size_t equals = pair.find('=');
        request.query[std::string(pair.substr(0, equals))] =
            equals == std::string_view::npos ? "" : std::string(pair.substr(equals + 1));
    }
}

ApiResponse answer(const ApiHandler& handler, const ApiRequest& request) {
    try {
        return handler(request);
    } catch (const ApiError& error) {
        return {error.status(), {{"error", error.what()}}};
    } catch (const std::exception& error) {
        spdlog::error("{} /{}: {}", request.method, fmt::join(request.path, "/"), error.what());
        return {500, {{"error", error.what()}}};
    }
}

// After refusing a body as too large, reads (and drops) what the client still
// sends, for a while, so that a client that sends its whole body before it
// reads gets the answer rather than a broken pipe (nginx's lingering close).
void linger(Local::socket& socket) {
    beast::error_code error;
    socket.shutdown(asio::socket_base::shutdown_send, error);
    timeval timeout{2, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::array<char, 65536> discard;
    for (size_t total = 0; total < 64 * ApiServer::kMaxBodyBytes;) {
        size_t n = socket.read_some(asio::buffer(discard), error);
        if (error || n == 0) {
            return;
        }
        total += n;
    }
}

void serve(ApiServer::State& state, Local::socket socket) {
    beast::flat_buffer buffer;
    while (true) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(ApiServer::kMaxBodyBytes);
        beast::error_code error;
        http::read(socket, buffer, parser, error);
        ApiResponse response;
        bool keep_alive = false;
        if (error == http::error::end_of_stream || error == asio::error::eof) {
            return;
        } else if (error == http::error::body_limit) {
            response = {413,
                        {{"error", fmt::format("the body is larger than {} bytes",
                                               ApiServer::kMaxBodyBytes)}}};
        } else if (error) {
            response = {400, {{"error", fmt::format("not an HTTP request: {}", error.message())}}};
        } else {
            const auto& message = parser.get();
            ApiRequest request;
            request.method = std::string(message.method_string());
            split_target(std::string_view(message.target().data(), message.target().size()),
                         request);
            request.body = message.body();
            response = answer(state.handler, request);
            keep_alive = message.keep_alive();
        }
        http::response<http::string_body> reply{static_cast<http::status>(response.status), 11};
        reply.set(http::field::server, "vireod");
        reply.set(http::field::content_type,
                  response.text ? "text/plain; version=0.0.4" : "application/json");
        reply.keep_alive(keep_alive);
        // A guest's console need not be UTF-8: such bytes become U+FFFD.
        reply.body() =
            response.text
                ? *response.text
                : response.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                      "\n";
        reply.prepare_payload();
        http::write(socket, reply, error);
        if (response.status == 413) {
            linger(socket);
        }
        if (error || !keep_alive) {
            return;
        }
    }
}

void accept_next(ApiServer::State& state) {
    state.acceptor.async_accept([&state](beast::error_code error, Local::socket socket) {
        if (error) {
            return;  // closed: shutting down
        }
        if (state.connections >= ApiServer::kMaxConnections) {
            spdlog::warn("API: {} connections already; one refused", state.connections.load());
        } else {
            ++state.connections;
            std::thread([&state, connection = std::move(socket)]() mutable {
                serve(state, std::move(connection));
                --state.connections;
            }).detach();
        }
        accept_next(state);
    });
}

}  // namespace

void refuse_unknown_path(const ApiRequest& request) {
    refuse(404, "no such resource: {} /{}", request.method, fmt::join(request.path, "/"));
}

ApiServer::ApiServer(std::filesystem::path socket, ApiHandler handler)
    : state_(std::make_unique<State>()) {
    state_->socket = std::move(socket);
    state_->handler = std::move(handler);
    std::error_code ignored;
    std::filesystem::create_directories(state_->socket.parent_path(), ignored);
    std::filesystem::remove(state_->socket, ignored);
    beast::error_code error;
    state_->acceptor.open(Local(), error);
    if (!error) {
        state_->acceptor.bind(Local::endpoint(state_->socket.string()), error);
    }
    if (!error) {
        ::chmod(state_->socket.c_str(), 0600);
        state_->acceptor.listen(asio::socket_base::max_listen_connections, error);
    }
    if (error) {
        fail("API socket {}: cannot listen: {}", state_->socket.string(), error.message());
    }
}

ApiServer::~ApiServer() {
    std::error_code ignored;
    std::filesystem::remove(state_->socket, ignored);
}

void ApiServer::run() {
    asio::signal_set signals(state_->io, SIGTERM, SIGINT);
    signals.async_wait([this](beast::error_code, int) {
        beast::error_code ignored;
        state_->acceptor.close(ignored);
    });
    accept_next(*state_);
    state_->io.run();
    // Requests being answered finish first (each is short).
    for (int i = 0; i < 500 && state_->connections > 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

}  // namespace vireo
