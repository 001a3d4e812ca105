#include "vmm/control_server.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/error.h"

namespace vireo {

namespace {

constexpr size_t kMaxRequestBytes = 64 * 1024;

}  // namespace

ControlServer::ControlServer(std::string path, EventLoop& loop)
    : path_(std::move(path)), loop_(loop) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path_.size() >= sizeof(address.sun_path)) {
        fail("control socket {}: path longer than {} bytes", path_, sizeof(address.sun_path) - 1);
    }
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listener_) {
        fail_errno("control socket {}: socket", path_);
    }
    // A socket file left by a VMM that died is stale; a live one answers connect().
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
        fail("control socket {}: another VMM is listening there", path_);
    }
    ::unlink(path_.c_str());
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        fail_errno("control socket {}: bind", path_);
    }
    if (::listen(listener_.get(), 16) != 0) {
        fail_errno("control socket {}: listen", path_);
    }
    loop_.add(listener_.get(), [this] { accept_client(); });
}

ControlServer::~ControlServer() {
    for (auto& [fd, client] : clients_) {
        loop_.remove(fd);
    }
    loop_.remove(listener_.get());
    ::unlink(path_.c_str());
}

void ControlServer::accept_client() {
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!client) {
        return;
    }
    int fd = client.get();
    clients_.emplace(fd, std::make_pair(std::move(client), std::string()));
    loop_.add(fd, [this, fd] { read_client(fd); });
}

void ControlServer::read_client(int fd) {
    auto& [socket, pending] = clients_.at(fd);
    char buffer[4096];
    ssize_t got = ::read(fd, buffer, sizeof(buffer));
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (got <= 0) {
        close_client(fd);
        return;
    }
    pending.append(buffer, static_cast<size_t>(got));
    if (pending.size() > kMaxRequestBytes) {
        close_client(fd);
        return;
    }
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, newline);
        pending.erase(0, newline + 1);
        std::string reply = answer(line).dump() + "\n";
        // Replies are small; a client that does not read them loses them.
        [[maybe_unused]] ssize_t sent = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
}

nlohmann::json ControlServer::answer(const std::string& line) {
    nlohmann::json request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (request.is_discarded() || !request.is_object() || !request.contains("command") ||
        !request["command"].is_string()) {
        return {{"ok", false}, {"error", "a request is one line of JSON: {\"command\": \"info\"}"}};
    }
    std::string command = request["command"];
    auto handler = commands_.find(command);
    if (handler == commands_.end()) {
        std::string known;
        for (const auto& [name, ignored] : commands_) {
            known += (known.empty() ? "" : ", ") + name;
        }
        return {{"ok", false},
                {"error", "unknown command '" + command + "' (known: " + known + ")"}};
    }
    try {
        return {{"ok", true}, {"result", handler->second(request)}};
    } catch (const std::exception& error) {
        return {{"ok", false}, {"error", error.what()}};
    }
}

void ControlServer::close_client(int fd) {
    loop_.remove(fd);
    clients_.erase(fd);
}

}  // namespace vireo
