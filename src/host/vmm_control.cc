#include "host/vmm_control.h"

#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "base/unique_fd.h"

namespace vireo {

std::string vmm_binary() {
    if (const char* override_path = std::getenv("VIREO_VMM")) {
        return override_path;
    }
    char self[PATH_MAX];
    ssize_t length = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (length <= 0) {
        fail_errno("cannot find this executable's folder");
    }
    self[length] = '\0';
    return (std::filesystem::path(self).parent_path() / "vireo-vmm").string();
}

nlohmann::json vmm_request(const std::filesystem::path& socket, const std::string& command,
                           nlohmann::json fields, std::chrono::milliseconds timeout) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket.native().size() >= sizeof(address.sun_path)) {
        fail("{}: the control socket's path is too long", socket.string());
    }
    std::strcpy(address.sun_path, socket.c_str());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        fail_errno("{}: cannot connect to the VMM", socket.string());
    }
    fields["command"] = command;
    std::string line = fields.dump() + "\n";
    if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(line.size())) {
        fail_errno("{}: cannot send {}", socket.string(), command);
    }
    std::string answer;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (answer.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd event{fd.get(), POLLIN, 0};
        if (left.count() <= 0 || ::poll(&event, 1, static_cast<int>(left.count())) == 0) {
            fail("{}: the VMM did not answer {} within {} ms", socket.string(), command,
                 timeout.count());
        }
        char buffer[4096];
        ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
        if (n <= 0) {
            fail("{}: the VMM closed the connection before answering {}", socket.string(), command);
        }
        answer.append(buffer, static_cast<size_t>(n));
    }
    nlohmann::json reply = nlohmann::json::parse(answer.substr(0, answer.find('\n')), nullptr,
                                                 /*allow_exceptions=*/false);
    if (!reply.is_object() || !reply.contains("ok")) {
        fail("{}: the VMM answered {} with something that is not a reply", socket.string(),
             command);
    }
    if (!reply["ok"].get<bool>()) {
        fail("{}", reply.value("error", std::string("refused")));
    }
    return reply.value("result", nlohmann::json::object());
}

}  // namespace vireo
