#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace vireo {

// Walks one JSON object, remembering the field path for error messages and
// refusing fields nobody asked for (a typo must not be silently ignored).
class ObjectReader {
public:
    ObjectReader(const nlohmann::json& object, std::string path, const std::string& source)
        : object_(object), path_(std::move(path)), source_(source) {
        if (!object_.is_object()) {
            fail("{}: {} must be a JSON object", source_, path_.empty() ? "the document" : path_);
        }
    }

    const nlohmann::json* find(const std::string& key) {
        seen_.insert(key);
        auto it = object_.find(key);
        return it == object_.end() || it->is_null() ? nullptr : &*it;
    }

    std::string field(const std::string& key) const {
        return path_.empty() ? key : path_ + "." + key;
    }

    template <typename... Args>
    [[noreturn]] void error(const std::string& key, fmt::format_string<Args...> format,
                            Args&&... args) const {
        fail("{}: {}: {}", source_, field(key), fmt::format(format, std::forward<Args>(args)...));
    }

    std::optional<std::string> string(const std::string& key) {
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_string()) {
            error(key, "must be a string, not {}", value->type_name());
        }
        return value->get<std::string>();
    }

    // A string that must be there and not be empty; `what` says what it is.
    std::string required_string(const std::string& key, std::string_view what) {
        auto value = string(key);
        if (!value || value->empty()) {
            error(key, "missing ({})", what);
        }
        return *value;
    }

    std::optional<uint64_t> unsigned_integer(const std::string& key, uint64_t min, uint64_t max) {
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_number_integer() ||
            (value->is_number_integer() && !value->is_number_unsigned() &&
             value->get<int64_t>() < 0)) {
            error(key, "must be a whole number from {} to {}, not {}", min, max, value->dump());
        }
        uint64_t number = value->get<uint64_t>();
        if (number < min || number > max) {
            error(key, "{} is out of range ({} to {})", number, min, max);
        }
        return number;
    }

    std::optional<bool> boolean(const std::string& key) {
        const nlohmann::json* value = find(key);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_boolean()) {
            error(key, "must be true or false, not {}", value->dump());
        }
        return value->get<bool>();
    }

    void refuse_unknown_fields() const {
        for (const auto& [key, value] : object_.items()) {
            if (!seen_.contains(key)) {
                std::string known;
                for (const auto& name : seen_) {
                    known += (known.empty() ? "" : ", ") + name;
                }
                fail("{}: {}: unknown field (known here: {})", source_, field(key), known);
            }
        }
    }

private:
    const nlohmann::json& object_;
    std::string path_;
    const std::string& source_;
    std::set<std::string> seen_;
};

}  // namespace vireo
