#include "host/api_request.h"

#include "host/api_error.h"

namespace vireo {

using nlohmann::json;

json body_object(const ApiRequest& request) {
    json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
        refuse(400, "body: not valid JSON");
    }
    if (!body.is_object()) {
        refuse(400, "body: must be a JSON object, not {}", body.type_name());
    }
    return body;
}

bool query_flag(const ApiRequest& request, const std::string& key) {
    auto found = request.query.find(key);
    if (found == request.query.end() || found->second == "false") {
        return false;
    }
    if (found->second != "true") {
        refuse(400, "{}: '{}' is neither true nor false", key, found->second);
    }
    return true;
}

}  // namespace vireo
