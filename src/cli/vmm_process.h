#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"

namespace vireo::cli {

struct VmmResult {
    int exit_status;        // vireo-vmm's own exit status
    nlohmann::json report;  // its --report: reason, exit_status, guest_code, detail
};

// Runs vireo-vmm in the foreground with `definition` as its VM definition
// (handed over in a memfd, so nothing is left on disk) and waits for it.
// The console stays on this process's terminal. `handed_over` are fds the
// definition names (open across exec): vireo-vmm inherits them, this process
// closes its copies once vireo-vmm runs.
VmmResult run_vmm(const nlohmann::json& definition, std::vector<UniqueFd> handed_over = {});

}  // namespace vireo::cli
