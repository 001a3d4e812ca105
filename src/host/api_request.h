#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "host/api_server.h"

namespace vireo {

// What the API's routes read from a request, refused (ApiError 400) naming
// the part at fault.

// The request's body as a JSON object.
nlohmann::json body_object(const ApiRequest& request);
// ?KEY=true or ?KEY=false; false when absent.
bool query_flag(const ApiRequest& request, const std::string& key);

}  // namespace vireo
