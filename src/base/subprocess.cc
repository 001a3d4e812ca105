#include "base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "base/error.h"
#include "base/unique_fd.h"

extern char** environ;

namespace vireo {

namespace {

struct Pipe {
    UniqueFd read;
    UniqueFd write;

    Pipe() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            fail_errno("cannot create a pipe");
        }
        read.reset(fds[0]);
        write.reset(fds[1]);
    }
};

// The child's stdin: a socket rather than a pipe, so that writing to a child
// that stopped reading fails with EPIPE (MSG_NOSIGNAL) instead of raising
// SIGPIPE in this process. Our end does not block.
struct InputSocket {
    UniqueFd ours;
    UniqueFd childs;

    InputSocket() {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
            fail_errno("cannot create a socket pair");
        }
        ours.reset(fds[0]);
        childs.reset(fds[1]);
        ::shutdown(ours.get(), SHUT_RD);
        ::fcntl(ours.get(), F_SETFL, O_NONBLOCK);
    }
};

// Administration tools live in the sbin folders, which a non-login root shell
// may not have on its PATH.
std::string find_program(const std::string& name) {
    if (name.find('/') != std::string::npos) {
        return name;
    }
    std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
    path += ":/usr/sbin:/sbin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= path.size()) {
        size_t end = path.find(':', start);
        std::string folder = path.substr(start, end == std::string::npos ? end : end - start);
        if (!folder.empty() && ::access((folder + "/" + name).c_str(), X_OK) == 0) {
            return folder + "/" + name;
        }
        if (end == std::string::npos) {
            break;
        }
        start = end + 1;
    }
    fail("{}: not found (looked in PATH, /usr/sbin and /sbin)", name);
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input) {
    std::string program = find_program(argv.at(0));
    InputSocket in;
    Pipe out;
    Pipe err;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in.childs.get(), STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out.write.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err.write.get(), STDERR_FILENO);
    std::vector<char*> args;
    for (const std::string& arg : argv) {
        args.push_back(const_cast<char*>(arg.c_str()));
    }
    args.push_back(nullptr);
    pid_t pid = 0;
    int spawned = posix_spawn(&pid, program.c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
        errno = spawned;
        fail_errno("cannot start {}", program);
    }
    in.childs.reset();
    out.write.reset();
    err.write.reset();

    // Feed stdin and drain both outputs together: a program that fills one
    // pipe while we wait on another would never finish.
    ProcessResult result;
    size_t written = 0;
    if (input.empty()) {
        in.ours.reset();
    }
    while (out.read || err.read) {
        std::array<pollfd, 3> fds{{{out.read.get(), POLLIN, 0},
                                   {err.read.get(), POLLIN, 0},
                                   {in.ours.get(), POLLOUT, 0}}};
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail_errno("{}: poll", program);
        }
        if (fds[2].revents != 0) {
            ssize_t n =
                ::send(in.ours.get(), input.data() + written, input.size() - written, MSG_NOSIGNAL);
            if (n > 0) {
                written += static_cast<size_t>(n);
            }
            bool stopped_reading = n < 0 && errno != EAGAIN && errno != EINTR;
            if (stopped_reading || written == input.size()) {
                in.ours.reset();  // its EOF
            }
        }
        UniqueFd* readers[] = {&out.read, &err.read};
        std::string* sinks[] = {&result.out, &result.err};
        for (size_t i = 0; i < 2; ++i) {
            if (fds[i].revents == 0) {
                continue;
            }
            char buffer[4096];
            ssize_t n = ::read(readers[i]->get(), buffer, sizeof(buffer));
            if (n > 0) {
                sinks[i]->append(buffer, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                readers[i]->reset();
            }
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fail_errno("{}: waitpid", program);
        }
    }
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

}  // namespace vireo
