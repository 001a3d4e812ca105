#pragma once

#include <string>
#include <vector>

namespace vireo::cli {

// "a,b,c" -> {"a", "b", "c"}: an option's value and its sub-options.
std::vector<std::string> split_commas(const std::string& spec);

// "key=value" -> {"key", "value"}; without '=', the value is empty.
struct KeyValue {
    std::string key;
    std::string value;
};
KeyValue split_key_value(const std::string& part);

}  // namespace vireo::cli
