#pragma once

#include <filesystem>
#include <string>

#include "host/api_server.h"
#include "host/vmm_supervisor.h"

namespace vireo {

// One operator at a VM's serial console over a WebSocket: the console log
// from a byte offset on goes out as it grows; what the operator types goes to
// the VMM (console-input), kept and retried while the UART's FIFO is full.
// Ends (a normal close) once the VM is off and everything it printed is sent.
class ConsoleSession : public WebSocketSession {
public:
    static constexpr size_t kMaxChunk = 64 * 1024;       // bytes sent per poll
    static constexpr size_t kMaxPendingInput = 1 << 20;  // typed but not yet taken

    ConsoleSession(VmmSupervisor& supervisor, std::string vm, std::filesystem::path log,
                   int64_t offset);

    void received(std::string_view message) override;
    std::string poll(bool& done) override;

private:
    void deliver_input();

    VmmSupervisor& supervisor_;
    std::string vm_;
    std::filesystem::path log_path_;
    int64_t offset_;
    std::string pending_input_;
};

}  // namespace vireo
