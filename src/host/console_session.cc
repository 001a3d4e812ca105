#include "host/console_session.h"

#include <fstream>

#include <spdlog/spdlog.h>

#include "host/api_error.h"

namespace vireo {

ConsoleSession::ConsoleSession(VmmSupervisor& supervisor, std::string vm, std::filesystem::path log,
                               int64_t offset)
    : supervisor_(supervisor), vm_(std::move(vm)), log_path_(std::move(log)), offset_(offset) {}

void ConsoleSession::received(std::string_view message) {
    if (pending_input_.size() + message.size() > kMaxPendingInput) {
        spdlog::warn("VM '{}': console input beyond {} bytes not yet taken; dropped", vm_,
                     kMaxPendingInput);
        return;
    }
    pending_input_.append(message);
    deliver_input();
}

void ConsoleSession::deliver_input() {
    constexpr size_t kMaxRequest = 4096;  // what one console-input takes
    while (!pending_input_.empty()) {
        std::string hex;
        size_t count = std::min(pending_input_.size(), kMaxRequest);
        for (size_t i = 0; i < count; ++i) {
            hex += fmt::format("{:02x}", static_cast<uint8_t>(pending_input_[i]));
        }
        size_t accepted = 0;
        try {
            accepted = supervisor_.console_input(vm_, hex);
        } catch (const Error&) {
            pending_input_.clear();  // the VM is off: nobody to type to
            return;
        }
        pending_input_.erase(0, std::min(accepted, count));
        if (accepted < count) {
            return;  // the FIFO is full: again at the next poll
        }
    }
}

std::string ConsoleSession::poll(bool& done) {
    deliver_input();
    bool running = supervisor_.running(vm_);
    // Opened afresh each time: a reset's new VMM writes a new log.
    std::ifstream log(log_path_, std::ios::binary);
    std::string text;
    if (log) {
        log.seekg(0, std::ios::end);
        int64_t size = log.tellg();
        if (offset_ > size) {
            offset_ = 0;  // the log was cut: a new power-on writes it afresh
        }
        text.resize(static_cast<size_t>(std::min<int64_t>(kMaxChunk, size - offset_)));
        log.seekg(offset_);
        log.read(text.data(), static_cast<std::streamsize>(text.size()));
        offset_ += static_cast<int64_t>(text.size());
    }
    // Off, and nothing more printed since it was seen off: the end.
    done = !running && text.empty();
    return text;
}

}  // namespace vireo
