#pragma once

#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "vmm/event_loop.h"

namespace vireo {

// The VM's control socket: a Unix stream socket where each request is one
// line of JSON, {"command": "info"}, and each answer one line,
// {"ok": true, "result": {...}} or {"ok": false, "error": "..."}.
// Commands are dispatched to handlers the VMM registers (info, pause, ...).
class ControlServer {
public:
    using Command = std::function<nlohmann::json(const nlohmann::json& request)>;

    // Throws vireo::Error naming the path if it cannot listen there.
    ControlServer(std::string path, EventLoop& loop);
    ~ControlServer();  // closes clients and removes the socket file

    void on(const std::string& command, Command handler) {
        commands_[command] = std::move(handler);
    }

private:
    void accept_client();
    void read_client(int fd);
    nlohmann::json answer(const std::string& line);
    void close_client(int fd);

    std::string path_;
    EventLoop& loop_;
    UniqueFd listener_;
    std::map<std::string, Command> commands_;
    std::map<int, std::pair<UniqueFd, std::string>> clients_;  // fd -> (socket, partial line)
};

}  // namespace vireo
