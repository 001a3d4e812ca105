#pragma once

#include <utility>

#include "base/error.h"

namespace vireo {

// A refused request to the host agent, with the HTTP status that says why:
// 400 what was asked is malformed (the message names the field), 404 no such
// object, 409 the object is in the wrong state for it (a running VM deleted).
// The message is one line for the operator.
class ApiError : public Error {
public:
    ApiError(int status, const std::string& message) : Error(message), status_(status) {}
    int status() const { return status_; }

private:
    int status_;
};

template <typename... Args>
[[noreturn]] void refuse(int status, fmt::format_string<Args...> format, Args&&... args) {
    throw ApiError(status, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace vireo
