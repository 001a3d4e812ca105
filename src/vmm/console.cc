#include "vmm/console.h"

#include <fcntl.h>
#include <unistd.h>

#include <poll.h>

#include <algorithm>
#include <chrono>

#include "base/error.h"
#include "devices/legacy/serial_8250.h"

namespace vireo {

ConsoleOutput::ConsoleOutput(const VmConfig::Console& config) {
    switch (config.output) {
        case VmConfig::ConsoleOutput::Stdio:
            fd_ = STDOUT_FILENO;
            break;
        case VmConfig::ConsoleOutput::File:
            file_.reset(
                ::open(config.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
            if (!file_) {
                fail_errno("console.path {}: cannot open for writing", config.path);
            }
            fd_ = file_.get();
            break;
        case VmConfig::ConsoleOutput::None:
            break;
    }
}

void ConsoleOutput::write(std::span<const uint8_t> bytes) {
    if (fd_ < 0) {
        return;
    }
    std::lock_guard lock(mutex_);
    while (!bytes.empty()) {
        ssize_t written = ::write(fd_, bytes.data(), bytes.size());
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            return;  // a closed terminal must not stop the guest
        }
        bytes = bytes.subspan(static_cast<size_t>(written));
    }
}

ConsoleInput::ConsoleInput(Serial8250& serial, std::function<void()> on_escape)
    : serial_(serial), on_escape_(std::move(on_escape)) {
    termios current{};
    if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &current) == 0) {
        saved_ = current;
        termios raw = current;
        ::cfmakeraw(&raw);
        // Keep output post-processing so the host's newline handling stays sane.
        raw.c_oflag |= OPOST;
        ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    thread_ = std::thread([this] { pump(); });
}

ConsoleInput::~ConsoleInput() {
    stopping_ = true;
    stop_.signal();
    thread_.join();
    if (saved_) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &*saved_);
    }
}

std::span<const uint8_t> ConsoleInput::until_escape(std::span<const uint8_t> input, bool& escaped) {
    auto escape = std::find(input.begin(), input.end(), kEscapeKey);
    escaped = escape != input.end();
    return input.first(static_cast<size_t>(escape - input.begin()));
}

void ConsoleInput::pump() {
    uint8_t buffer[256];
    while (!stopping_) {
        pollfd fds[] = {{STDIN_FILENO, POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if (fds[1].revents != 0) {
            return;
        }
        ssize_t got = ::read(STDIN_FILENO, buffer, sizeof(buffer));
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (got <= 0) {
            return;  // end of input: the guest keeps running without a keyboard
        }
        bool escaped = false;
        auto for_guest = until_escape({buffer, static_cast<size_t>(got)}, escaped);
        if (!deliver(for_guest)) {
            return;
        }
        if (escaped) {
            on_escape_();
            return;
        }
    }
}

bool ConsoleInput::deliver(std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
        bytes = bytes.subspan(serial_.enqueue_input(bytes));
        while (!bytes.empty() && !serial_.wait_for_room(std::chrono::milliseconds(100))) {
            if (stopping_) {
                return false;
            }
        }
    }
    return true;
}

}  // namespace vireo
