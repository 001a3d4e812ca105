#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include "base/unique_fd.h"
#include "net/network_config.h"

namespace vireo {

// The processes that keep the switches' steering (net/switch_steering.h):
// one `vireo switch steer SWITCH` per steered switch, found through the lock
// file <state dir>/steering/SWITCH.lock, which it holds while it runs and
// which holds its pid. It logs to SWITCH.log beside it. A keeper ends by
// itself when its switch is deleted or no longer steered.
class SteeringKeepers {
public:
    explicit SteeringKeepers(std::filesystem::path state_dir);

    // Starts `vireo_binary switch steer SWITCH`, detached, for each steered
    // switch of `config` that has no keeper. Throws vireo::Error.
    void start_missing(const NetworkConfig& config,
                       const std::filesystem::path& vireo_binary) const;
    // The pid of the keeper of `switch_name`, if one runs.
    std::optional<pid_t> running(const std::string& switch_name) const;
    // For the keeper itself: takes the lock and writes its pid into it; the
    // lock lasts as long as the returned descriptor. nullopt when another
    // keeper holds it.
    std::optional<UniqueFd> claim(const std::string& switch_name) const;

private:
    std::filesystem::path lock_file(const std::string& switch_name) const;
    UniqueFd open_lock(const std::string& switch_name) const;

    std::filesystem::path dir_;
};

}  // namespace vireo
