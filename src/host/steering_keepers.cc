#include "host/steering_keepers.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "base/error.h"

namespace vireo {

SteeringKeepers::SteeringKeepers(std::filesystem::path state_dir)
    : dir_(std::move(state_dir) / "steering") {}

std::filesystem::path SteeringKeepers::lock_file(const std::string& switch_name) const {
    return dir_ / (switch_name + ".lock");
}

UniqueFd SteeringKeepers::open_lock(const std::string& switch_name) const {
    std::error_code error;
    std::filesystem::create_directories(dir_, error);
    std::filesystem::path path = lock_file(switch_name);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) {
        fail_errno("{}: cannot open the steering keeper's lock file", path.string());
    }
    return fd;
}

std::optional<pid_t> SteeringKeepers::running(const std::string& switch_name) const {
    if (!std::filesystem::exists(lock_file(switch_name))) {
        return std::nullopt;
    }
    UniqueFd fd = open_lock(switch_name);
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
        return std::nullopt;  // nobody holds it
    }
    char text[32] = {};
    ssize_t length = ::pread(fd.get(), text, sizeof(text) - 1, 0);
    pid_t pid = length > 0 ? static_cast<pid_t>(std::strtol(text, nullptr, 10)) : 0;
    return pid > 0 ? std::optional(pid) : std::nullopt;
}

std::optional<UniqueFd> SteeringKeepers::claim(const std::string& switch_name) const {
    UniqueFd fd = open_lock(switch_name);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        return std::nullopt;
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd.get(), 0) != 0 ||
        ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        fail_errno("{}: cannot write the keeper's pid", lock_file(switch_name).string());
    }
    return fd;
}

void SteeringKeepers::start_missing(const NetworkConfig& config,
                                    const std::filesystem::path& vireo_binary) const {
    for (const VirtualSwitch& vswitch : config.switches) {
        if (!vswitch.steered() || running(vswitch.name)) {
            continue;
        }
        std::filesystem::create_directories(dir_);
        std::string log = (dir_ / (vswitch.name + ".log")).string();
        // Twice forked and in a session of its own: no terminal, no parent to
        // wait for it, nothing of this command's but its environment.
        pid_t child = ::fork();
        if (child < 0) {
            fail_errno("switch {}: cannot start its steering keeper", vswitch.name);
        }
        if (child == 0) {
            ::setsid();
            if (::fork() != 0) {
                ::_exit(0);
            }
            int in = ::open("/dev/null", O_RDONLY);
            int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (in < 0 || out < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 ||
                ::dup2(out, 2) < 0) {
                ::_exit(127);
            }
            ::close_range(3, ~0U, 0);
            execl(vireo_binary.c_str(), "vireo", "switch", "steer", vswitch.name.c_str(),
                  static_cast<char*>(nullptr));
            ::_exit(127);
        }
        int status = 0;
        ::waitpid(child, &status, 0);
    }
}

}  // namespace vireo
