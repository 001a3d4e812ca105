#include "host/api_server.h"

#include <sys/stat.h>

#include <array>
#include <charconv>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "host/api_error.h"

namespace vireo {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using Local = asio::local::stream_protocol;
using Tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<Tcp::socket>;

struct ApiServer::State {
    ApiHandler handler;
    WebSocketHandler websocket_handler;
    asio::io_context io;
    std::filesystem::path socket;
    std::optional<Local::acceptor> local;
    std::optional<Tcp::acceptor> tcp;
    std::optional<ssl::context> tls;
    std::atomic<size_t> connections{0};
};

namespace {

// A client has this long to send a request (or the next one on a kept-alive
// connection) and to take an answer; then its connection closes, so that
// idle or stalled clients cannot hold all kMaxConnections threads.
constexpr auto kIoTimeout = std::chrono::seconds(60);
constexpr auto kLingerTimeout = std::chrono::seconds(2);

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

ApiRequest request_of(const http::request<http::string_body>& message, bool local) {
    ApiRequest request;
    request.method = std::string(message.method_string());
    split_target(std::string_view(message.target().data(), message.target().size()), request);
    request.body = message.body();
    request.local = local;
    auto authorization = message.find(http::field::authorization);
    constexpr std::string_view kBearer = "Bearer ";
    if (authorization != message.end()) {
        std::string_view value(authorization->value().data(), authorization->value().size());
        if (value.starts_with(kBearer)) {
            request.bearer = std::string(value.substr(kBearer.size()));
        } else {
            request.bearer = "";  // present but not a bearer token: refused as one
        }
    }
    return request;
}

ApiResponse error_answer(const ApiRequest& request, const std::exception& error) {
    if (const auto* refusal = dynamic_cast<const ApiError*>(&error)) {
        return {refusal->status(), {{"error", refusal->what()}}};
    }
    spdlog::error("{} /{}: {}", request.method, fmt::join(request.path, "/"), error.what());
    return {500, {{"error", error.what()}}};
}

ApiResponse answer(const ApiHandler& handler, const ApiRequest& request) {
    try {
        return handler(request);
    } catch (const std::exception& error) {
        return error_answer(request, error);
    }
}

// The bottom of a stream: the socket a timeout cancels.
template <typename Stream>
auto& socket_of(Stream& stream) {
    return beast::get_lowest_layer(stream);
}

// Runs an asynchronous operation on the connection's own io_context as if it
// were a blocking one, for at most `timeout` (then its socket is closed and
// the answer is beast::error::timeout). `start` takes the completion handler.
template <typename Stream, typename Start>
beast::error_code await(asio::io_context& io, Stream& stream,
                        std::chrono::steady_clock::duration timeout, Start start) {
    beast::error_code result = asio::error::would_block;
    start([&result](beast::error_code error, auto&&...) { result = error; });
    io.restart();
    io.run_for(timeout);
    if (result == asio::error::would_block) {
        beast::error_code ignored;
        socket_of(stream).close(ignored);
        io.restart();
        io.run();
        return beast::error::timeout;
    }
    return result;
}

// After refusing a body as too large, reads (and drops) what the client still
// sends, for a while, so that a client that sends its whole body before it
// reads gets the answer rather than a broken pipe (nginx's lingering close).
template <typename Stream>
void linger(asio::io_context& io, Stream& stream) {
    beast::error_code error;
    socket_of(stream).shutdown(asio::socket_base::shutdown_send, error);
    std::array<char, 65536> discard;
    auto deadline = std::chrono::steady_clock::now() + kLingerTimeout;
    for (size_t total = 0; total < 64 * ApiServer::kMaxBodyBytes;) {
        size_t got = 0;
        error = await(io, stream, deadline - std::chrono::steady_clock::now(), [&](auto done) {
            stream.async_read_some(asio::buffer(discard),
                                   [&got, done](beast::error_code code, size_t n) mutable {
                                       got = n;
                                       done(code);
                                   });
        });
        if (error || got == 0) {
            return;
        }
        total += got;
    }
}

// Serves an accepted WebSocket until either side closes it: the client's
// messages go to the session as they come, what the session has to send is
// asked for every kPollInterval, one write at a time.
template <typename Stream>
void serve_websocket(asio::io_context& io, Stream& stream,
                     const http::request<http::string_body>& message, WebSocketSession& session) {
    websocket::stream<Stream&> socket(stream);
    // Pings an idle console, so that a quiet operator is not cut off but a
    // vanished one is.
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.keep_alive_pings = true;
    socket.set_option(timeouts);
    socket.binary(true);
    socket.read_message_max(ApiServer::kMaxBodyBytes);
    beast::error_code error;
    socket.accept(message, error);
    if (error) {
        return;
    }
    beast::flat_buffer incoming;
    std::string outgoing;
    asio::steady_timer timer(io);
    std::function<void()> read_next = [&] {
        socket.async_read(incoming, [&](beast::error_code code, size_t) {
            if (code) {
                timer.cancel();  // the client went or closed: the session ends
                return;
            }
            session.received(beast::buffers_to_string(incoming.data()));
            incoming.consume(incoming.size());
            read_next();
        });
    };
    std::function<void()> tick = [&] {
        timer.expires_after(ApiServer::kPollInterval);
        timer.async_wait([&](beast::error_code code) {
            if (code) {
                return;
            }
            bool done = false;
            outgoing = session.poll(done);
            auto after_write = [&, done](beast::error_code written, size_t = 0) {
                if (written) {
                    return;
                }
                if (!done) {
                    tick();
                    return;
                }
                socket.async_close(websocket::close_code::normal, [](beast::error_code) {});
            };
            if (outgoing.empty()) {
                after_write({});
            } else {
                socket.async_write(asio::buffer(outgoing), after_write);
            }
        });
    };
    read_next();
    tick();
    io.restart();
    io.run();
}

template <typename Stream>
void serve(ApiServer::State& state, asio::io_context& io, Stream& stream, bool local) {
    beast::flat_buffer buffer;
    while (true) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(ApiServer::kMaxBodyBytes);
        beast::error_code error = await(io, stream, kIoTimeout, [&](auto done) {
            http::async_read(stream, buffer, parser, done);
        });
        ApiResponse response;
        bool keep_alive = false;
        if (error == http::error::end_of_stream || error == asio::error::eof ||
            error == beast::error::timeout) {
            return;
        } else if (error == http::error::body_limit) {
            response = {413,
                        {{"error", fmt::format("the body is larger than {} bytes",
                                               ApiServer::kMaxBodyBytes)}}};
        } else if (error) {
            response = {400, {{"error", fmt::format("not an HTTP request: {}", error.message())}}};
        } else {
            const auto& message = parser.get();
            ApiRequest request = request_of(message, local);
            if (websocket::is_upgrade(message)) {
                std::unique_ptr<WebSocketSession> session;
                try {
                    session = state.websocket_handler(request);
                } catch (const std::exception& refusal) {
                    response = error_answer(request, refusal);
                }
                if (session) {
                    serve_websocket(io, stream, message, *session);
                    return;
                }
            } else {
                response = answer(state.handler, request);
                keep_alive = message.keep_alive();
            }
        }
        http::response<http::string_body> reply{static_cast<http::status>(response.status), 11};
        reply.set(http::field::server, "vireod");
        reply.set(http::field::content_type,
                  response.text ? "text/plain; version=0.0.4" : "application/json");
        if (response.status == 401) {
            reply.set(http::field::www_authenticate, "Bearer realm=\"vireod\"");
        }
        reply.keep_alive(keep_alive);
        // A guest's console need not be UTF-8: such bytes become U+FFFD.
        reply.body() =
            response.text
                ? *response.text
                : response.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                      "\n";
        reply.prepare_payload();
        error = await(io, stream, kIoTimeout,
                      [&](auto done) { http::async_write(stream, reply, done); });
        if (response.status == 413) {
            linger(io, stream);
        }
        if (error || !keep_alive) {
            return;
        }
    }
}

// Runs `body` on a thread of its own unless kMaxConnections are busy.
void start_connection(ApiServer::State& state, std::function<void()> body) {
    if (state.connections >= ApiServer::kMaxConnections) {
        spdlog::warn("API: {} connections already; one refused", state.connections.load());
        return;
    }
    ++state.connections;
    std::thread([&state, body = std::move(body)] {
        body();
        --state.connections;
    }).detach();
}

void accept_local(ApiServer::State& state) {
    state.local->async_accept([&state](beast::error_code error, Local::socket accepted) {
        if (error) {
            return;  // closed: shutting down
        }
        start_connection(state, [&state, fd = accepted.release()] {
            asio::io_context io;
            Local::socket socket(io, Local(), fd);
            serve(state, io, socket, /*local=*/true);
        });
        accept_local(state);
    });
}

void accept_tls(ApiServer::State& state) {
    state.tcp->async_accept([&state](beast::error_code error, Tcp::socket accepted) {
        if (error) {
            return;
        }
        Tcp protocol = accepted.local_endpoint(error).protocol();
        start_connection(state, [&state, protocol, fd = accepted.release()] {
            asio::io_context io;
            TlsStream stream(Tcp::socket(io, protocol, fd), *state.tls);
            beast::error_code failed = await(io, stream, kIoTimeout, [&](auto done) {
                stream.async_handshake(ssl::stream_base::server, done);
            });
            if (failed) {
                spdlog::debug("API: TLS handshake failed: {}", failed.message());
                return;
            }
            serve(state, io, stream, /*local=*/false);
            await(io, stream, kLingerTimeout, [&](auto done) { stream.async_shutdown(done); });
        });
        accept_tls(state);
    });
}

// "HOST:PORT", "[V6]:PORT" or ":PORT" (every address) -> an endpoint.
Tcp::endpoint parse_address(const std::string& address) {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
        fail("--listen {}: give HOST:PORT, [IPv6]:PORT or :PORT", address);
    }
    std::string host = address.substr(0, colon);
    std::string port_text = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    unsigned port = 0;
    auto [end, problem] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (problem != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
        fail("--listen {}: the port '{}' is not a number from 1 to 65535", address, port_text);
    }
    beast::error_code error;
    asio::ip::address ip = host.empty() ? asio::ip::address(asio::ip::address_v6::any())
                                        : asio::ip::make_address(host, error);
    if (error) {
        fail("--listen {}: '{}' is not an IP address", address, host);
    }
    return {ip, static_cast<unsigned short>(port)};
}

}  // namespace

void refuse_unknown_path(const ApiRequest& request) {
    refuse(404, "no such resource: {} /{}", request.method, fmt::join(request.path, "/"));
}

ApiServer::ApiServer(ApiHandler handler, WebSocketHandler websocket_handler)
    : state_(std::make_unique<State>()) {
    state_->handler = std::move(handler);
    state_->websocket_handler = std::move(websocket_handler);
}

ApiServer::~ApiServer() {
    if (!state_->socket.empty()) {
        std::error_code ignored;
        std::filesystem::remove(state_->socket, ignored);
    }
}

void ApiServer::listen_unix(std::filesystem::path socket) {
    state_->socket = std::move(socket);
    std::error_code ignored;
    std::filesystem::create_directories(state_->socket.parent_path(), ignored);
    // Bound and listening under a temporary name, then renamed into place:
    // once the socket file is there, connections are taken (a client that
    // waits for it is never refused).
    std::filesystem::path temporary = state_->socket.string() + ".new";
    std::filesystem::remove(temporary, ignored);
    beast::error_code error;
    state_->local.emplace(state_->io);
    state_->local->open(Local(), error);
    if (!error) {
        state_->local->bind(Local::endpoint(temporary.string()), error);
    }
    if (!error) {
        ::chmod(temporary.c_str(), 0600);
        state_->local->listen(asio::socket_base::max_listen_connections, error);
    }
    if (!error && ::rename(temporary.c_str(), state_->socket.c_str()) != 0) {
        error = beast::error_code(errno, boost::system::system_category());
    }
    if (error) {
        fail("API socket {}: cannot listen: {}", state_->socket.string(), error.message());
    }
}

void ApiServer::listen_tls(const std::string& address, const TlsIdentity& identity) {
    Tcp::endpoint endpoint = parse_address(address);
    state_->tls.emplace(ssl::context::tls_server);
    beast::error_code error;
    state_->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                             ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    state_->tls->use_certificate_chain_file(identity.certificate.string(), error);
    if (error) {
        fail("TLS certificate {}: {}", identity.certificate.string(), error.message());
    }
    state_->tls->use_private_key_file(identity.key.string(), ssl::context::pem, error);
    if (error) {
        fail("TLS key {}: {}", identity.key.string(), error.message());
    }
    state_->tcp.emplace(state_->io);
    state_->tcp->open(endpoint.protocol(), error);
    if (!error) {
        state_->tcp->set_option(asio::socket_base::reuse_address(true), error);
    }
    if (!error && endpoint.address().is_v6()) {
        state_->tcp->set_option(asio::ip::v6_only(false), error);  // [::] takes IPv4 too
    }
    if (!error) {
        state_->tcp->bind(endpoint, error);
    }
    if (!error) {
        state_->tcp->listen(asio::socket_base::max_listen_connections, error);
    }
    if (error) {
        fail("--listen {}: cannot listen: {}", address, error.message());
    }
}

void ApiServer::run() {
    asio::signal_set signals(state_->io, SIGTERM, SIGINT);
    signals.async_wait([this](beast::error_code, int) {
        beast::error_code ignored;
        if (state_->local) {
            state_->local->close(ignored);
        }
        if (state_->tcp) {
            state_->tcp->close(ignored);
        }
    });
    if (state_->local) {
        accept_local(*state_);
    }
    if (state_->tcp) {
        accept_tls(*state_);
    }
    state_->io.run();
    // Requests being answered finish first (each is short; console sessions
    // are cut when the process exits).
    for (int i = 0; i < 500 && state_->connections > 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

}  // namespace vireo
