#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace vireo {

// One request on a running vireo-vmm's control socket (one line of JSON
// each way, src/vmm/control_server.h): sends {"command": command, ...fields}
// and returns the answer's "result". Throws vireo::Error when the socket does
// not answer within `timeout` or the VMM refused (its message).
nlohmann::json vmm_request(const std::filesystem::path& socket, const std::string& command,
                           nlohmann::json fields = nlohmann::json::object(),
                           std::chrono::milliseconds timeout = std::chrono::seconds(5));

// vireo-vmm next to this executable, or $VIREO_VMM.
std::string vmm_binary();

}  // namespace vireo
