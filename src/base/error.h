#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#include <fmt/format.h>

namespace vireo {

// What the user or the host got wrong: a missing file, a bad option, a missing
// KVM capability. The message is complete and printed as one line; what a guest
// does wrong never becomes an Error (devices mark themselves broken instead).
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// What this host lacks to run VMs (no KVM device, a missing capability, no
// permission): the same exit status as bad input (2), but reported as a host
// problem, not as the user's mistake.
class HostError : public Error {
public:
    explicit HostError(const std::string& message) : Error(message) {}
};

template <typename... Args>
[[noreturn]] void fail_host(fmt::format_string<Args...> format, Args&&... args) {
    throw HostError(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Like fail(), with ": <strerror(errno)>" appended; call right after the failing syscall.
template <typename... Args>
[[noreturn]] void fail_errno(fmt::format_string<Args...> format, Args&&... args) {
    int saved = errno;
    throw Error(fmt::format(format, std::forward<Args>(args)...) + ": " +
                std::generic_category().message(saved));
}

}  // namespace vireo
