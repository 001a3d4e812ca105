#include "cli/api_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "base/error.h"

namespace vireo::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using Local = asio::local::stream_protocol;
using Tcp = asio::ip::tcp;

namespace {

constexpr const char* kDefaultPort = "8443";

std::string default_socket() {
    const char* run_dir = std::getenv("VIREO_RUN_DIR");
    return (std::filesystem::path(run_dir && *run_dir ? run_dir : "/run/vireo") / "vireod.sock")
        .string();
}

// vireod's message from an answer's body, or the body itself.
std::string message_of(const std::string& body) {
    nlohmann::json answer = nlohmann::json::parse(body, nullptr, false);
    if (answer.is_object() && answer.contains("error") && answer["error"].is_string()) {
        return answer["error"];
    }
    return body;
}

}  // namespace

void add_target_options(CLI::App* command, ApiTarget& target) {
    command
        ->add_option("--socket", target.socket,
                     "vireod's API socket ($VIREO_SOCKET, /run/vireo/vireod.sock)")
        ->envname("VIREO_SOCKET")
        ->type_name("PATH");
    command
        ->add_option("--host", target.host,
                     "a remote vireod, https://NAME[:PORT] (port 8443 unless given; $VIREO_HOST)")
        ->envname("VIREO_HOST")
        ->type_name("URL");
    command->add_option("--token", target.token, "the API token for --host ($VIREO_TOKEN)")
        ->envname("VIREO_TOKEN");
    command
        ->add_option("--ca-cert", target.ca_cert,
                     "trust this certificate for --host, e.g. the host's own "
                     "/var/lib/vireo/tls/host.crt ($VIREO_CA_CERT)")
        ->envname("VIREO_CA_CERT")
        ->type_name("FILE");
    command
        ->add_flag("--insecure", target.insecure,
                   "do not check --host's certificate ($VIREO_INSECURE=1)")
        ->envname("VIREO_INSECURE");
}

ApiClient::ApiClient(const ApiTarget& target) : target_(target) {
    if (target_.host.empty()) {
        if (target_.socket.empty()) {
            target_.socket = default_socket();
        }
        where_ = target_.socket;
        return;
    }
    std::string_view url = target_.host;
    constexpr std::string_view kScheme = "https://";
    if (!url.starts_with(kScheme)) {
        fail("--host {}: give an https:// URL (vireod serves TCP only with TLS)", target_.host);
    }
    url.remove_prefix(kScheme.size());
    url = url.substr(0, url.find('/'));
    size_t colon = url.rfind(':');
    bool bracketed = url.starts_with('[');
    if (colon != std::string_view::npos && (!bracketed || url[colon - 1] == ']')) {
        server_name_ = std::string(url.substr(0, colon));
        port_ = std::string(url.substr(colon + 1));
    } else {
        server_name_ = std::string(url);
        port_ = kDefaultPort;
    }
    if (server_name_.size() >= 2 && server_name_.front() == '[' && server_name_.back() == ']') {
        server_name_ = server_name_.substr(1, server_name_.size() - 2);
    }
    if (server_name_.empty() || port_.empty() ||
        port_.find_first_not_of("0123456789") != std::string::npos) {
        fail("--host {}: give https://NAME or https://NAME:PORT", target_.host);
    }
    where_ = target_.host;
}

namespace {

// Connects to `client`'s vireod and runs `body` with the stream: a Unix
// socket, or TLS over TCP with the certificate checked for the host's name.
template <typename Body>
auto connected(const ApiTarget& target, const std::string& server_name, const std::string& port,
               const std::string& where, Body body) {
    asio::io_context io;
    beast::error_code error;
    if (target.host.empty()) {
        Local::socket socket(io);
        socket.connect(Local::endpoint(target.socket), error);
        if (error) {
            fail(
                "cannot reach vireod at {}: {} (is vireod running? --socket or VIREO_SOCKET "
                "name another, --host a remote one)",
                where, error.message());
        }
        return body(io, socket);
    }
    ssl::context tls(ssl::context::tls_client);
    tls.set_options(ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (target.insecure) {
        tls.set_verify_mode(ssl::verify_none);
    } else {
        tls.set_verify_mode(ssl::verify_peer);
        if (!target.ca_cert.empty()) {
            tls.load_verify_file(target.ca_cert, error);
            if (error) {
                fail("--ca-cert {}: cannot load it: {}", target.ca_cert, error.message());
            }
        } else {
            tls.set_default_verify_paths();
        }
    }
    beast::ssl_stream<Tcp::socket> stream(io, tls);
    SSL* handle = stream.native_handle();
    asio::ip::make_address(server_name, error);
    bool is_address = !error;
    if (!target.insecure) {
        X509_VERIFY_PARAM* check = SSL_get0_param(handle);
        if (is_address ? X509_VERIFY_PARAM_set1_ip_asc(check, server_name.c_str()) != 1
                       : SSL_set1_host(handle, server_name.c_str()) != 1) {
            fail("--host {}: cannot check the certificate for '{}'", where, server_name);
        }
    }
    if (!is_address) {
        // SSL_set_tlsext_host_name, without the macro's C cast.
        SSL_ctrl(handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(server_name.c_str()));
    }
    Tcp::resolver resolver(io);
    auto addresses = resolver.resolve(server_name, port, error);
    if (!error) {
        asio::connect(stream.next_layer(), addresses, error);
    }
    if (error) {
        fail("cannot reach vireod at {}: {}", where, error.message());
    }
    stream.handshake(ssl::stream_base::client, error);
    if (error) {
        fail("vireod at {}: TLS: {}{}", where, error.message(),
             target.insecure || !target.ca_cert.empty()
                 ? ""
                 : " (a host's own certificate is trusted with --ca-cert FILE, VIREO_CA_CERT)");
    }
    return body(io, stream);
}

}  // namespace

nlohmann::json ApiClient::call(std::string_view method, std::string_view target,
                               const nlohmann::json* body) const {
    http::request<http::string_body> request{
        http::string_to_verb(beast::string_view(method.data(), method.size())),
        beast::string_view(target.data(), target.size()), 11};
    request.set(http::field::host, server_name_.empty() ? "vireod" : server_name_);
    request.set(http::field::user_agent, "vireo");
    if (!target_.token.empty()) {
        request.set(http::field::authorization, "Bearer " + target_.token);
    }
    if (body) {
        request.set(http::field::content_type, "application/json");
        request.body() = body->dump();
    }
    request.prepare_payload();
    http::response<http::string_body> response =
        connected(target_, server_name_, port_, where_, [&](asio::io_context&, auto& stream) {
            beast::error_code error;
            http::write(stream, request, error);
            beast::flat_buffer buffer;
            http::response<http::string_body> answer;
            if (!error) {
                http::read(stream, buffer, answer, error);
            }
            if (error) {
                fail("vireod at {}: {} {}: {}", where_, method, target, error.message());
            }
            return answer;
        });
    unsigned status = response.result_int();
    if (status < 200 || status > 299) {
        fail("{}", message_of(response.body()));
    }
    nlohmann::json answer = nlohmann::json::parse(response.body(), nullptr, false);
    if (answer.is_discarded()) {
        fail("vireod answered {} {} with something that is not JSON", method, target);
    }
    return answer;
}

void ApiClient::websocket(
    std::string_view target, int input_fd,
    const std::function<std::string(std::string_view, bool& stop)>& next_input,
    const std::function<void(std::string_view)>& on_output) const {
    connected(target_, server_name_, port_, where_, [&](asio::io_context& io, auto& stream) {
        websocket::stream<decltype(stream)> socket(stream);
        socket.set_option(websocket::stream_base::decorator([&](websocket::request_type& request) {
            request.set(http::field::user_agent, "vireo");
            if (!target_.token.empty()) {
                request.set(http::field::authorization, "Bearer " + target_.token);
            }
        }));
        websocket::response_type response;
        beast::error_code error;
        socket.handshake(response, server_name_.empty() ? "vireod" : server_name_,
                         std::string(target), error);
        if (error) {
            // Beast keeps a declined answer to itself: what it was is the
            // caller's guess (its checks before asking rule out the rest).
            fail("vireod at {} declined the WebSocket {}: {}", where_, target,
                 error == websocket::error::upgrade_declined
                     ? "the console needs an admin token (or the VM just went off)"
                     : error.message());
        }
        socket.binary(true);
        socket.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));

        std::deque<std::string> queue;  // to send, one write at a time
        bool closing = false;
        std::function<void()> send_next = [&] {
            if (queue.empty()) {
                if (closing) {
                    socket.async_close(websocket::close_code::normal, [](beast::error_code) {});
                }
                return;
            }
            socket.async_write(asio::buffer(queue.front()), [&](beast::error_code code, size_t) {
                if (code) {
                    return;
                }
                queue.pop_front();
                send_next();
            });
        };
        auto take_input = [&](std::string_view chunk) {
            bool stop = false;
            std::string bytes = next_input(chunk, stop);
            bool idle = queue.empty();
            if (!bytes.empty()) {
                queue.push_back(std::move(bytes));
            }
            closing = closing || stop;
            if (idle) {
                send_next();
            }
            return !stop;
        };

        // A terminal or pipe is read as it comes; a file (or /dev/null),
        // which cannot be polled, to its end at once.
        asio::posix::stream_descriptor input(io);
        input.assign(::dup(input_fd), error);
        std::array<char, 4096> typed;
        std::function<void()> read_input = [&] {
            input.async_read_some(asio::buffer(typed), [&](beast::error_code code, size_t n) {
                if (!code && take_input({typed.data(), n})) {
                    read_input();
                }
            });
        };
        if (error) {
            ssize_t got;
            while ((got = ::read(input_fd, typed.data(), typed.size())) > 0 &&
                   take_input({typed.data(), static_cast<size_t>(got)})) {
            }
        } else {
            read_input();
        }

        beast::flat_buffer incoming;
        std::function<void()> read_output = [&] {
            socket.async_read(incoming, [&](beast::error_code code, size_t) {
                if (code) {
                    // Closed (the VM is off, or we detached): no more input
                    // either; run() returns once the last operation is done.
                    beast::error_code ignored;
                    input.close(ignored);
                    return;
                }
                on_output(beast::buffers_to_string(incoming.data()));
                incoming.consume(incoming.size());
                read_output();
            });
        };
        read_output();
        io.run();
    });
}

}  // namespace vireo::cli
