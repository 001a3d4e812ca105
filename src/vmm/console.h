#pragma once

#include <termios.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include <functional>
#include <thread>

#include "base/event_fd.h"
#include "base/unique_fd.h"
#include "vmm/vm_config.h"

namespace vireo {

class Serial8250;

// Where the guest's serial output goes: the terminal, a log file, or nowhere.
// Written from vCPU threads; one lock keeps lines from interleaving.
class ConsoleOutput {
public:
    // Throws vireo::Error naming the file when it cannot be opened.
    explicit ConsoleOutput(const VmConfig::Console& config);
    void write(std::span<const uint8_t> bytes);

private:
    std::mutex mutex_;
    int fd_ = -1;  // -1: discard
    UniqueFd file_;
};

// The operator's keyboard: a thread that forwards stdin to the UART. A
// terminal is put into raw mode (restored on destruction), so every key
// reaches the guest; the escape key ends the VM. Nothing typed is dropped: when
// the UART's FIFO is full the thread waits for the guest to drain it.
class ConsoleInput {
public:
    // Ctrl-] as in telnet and virsh console.
    static constexpr uint8_t kEscapeKey = 0x1d;

    ConsoleInput(Serial8250& serial, std::function<void()> on_escape);
    ~ConsoleInput();  // stops the thread, restores the terminal
    ConsoleInput(const ConsoleInput&) = delete;
    ConsoleInput& operator=(const ConsoleInput&) = delete;

    bool is_terminal() const { return saved_.has_value(); }
    // Splits what was read at the escape key: returns the bytes for the guest
    // and sets `escaped` when the operator pressed it (bytes after it are dropped).
    static std::span<const uint8_t> until_escape(std::span<const uint8_t> input, bool& escaped);

private:
    void pump();
    // Hands bytes to the UART, waiting for room; false if told to stop meanwhile.
    bool deliver(std::span<const uint8_t> bytes);

    Serial8250& serial_;
    std::function<void()> on_escape_;
    std::optional<termios> saved_;
    EventFd stop_;
    std::atomic<bool> stopping_ = false;
    std::thread thread_;
};

}  // namespace vireo
