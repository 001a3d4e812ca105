#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace vireo::cli {

struct VmmResult {
    int exit_status;        // vireo-vmm's own exit status
    nlohmann::json report;  // its --report: reason, exit_status, guest_code, detail
};

// Runs vireo-vmm in the foreground with `definition` as its VM definition
// (handed over in a memfd, so nothing is left on disk) and waits for it.
// The console stays on this process's terminal.
VmmResult run_vmm(const nlohmann::json& definition);

// vireo-vmm next to this executable, or $VIREO_VMM.
std::string vmm_path();

}  // namespace vireo::cli
