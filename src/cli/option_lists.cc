#include "cli/option_lists.h"

namespace vireo::cli {

std::vector<std::string> split_commas(const std::string& spec) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        size_t comma = spec.find(',', start);
        parts.push_back(spec.substr(start, comma - start));
        if (comma == std::string::npos) {
            return parts;
        }
        start = comma + 1;
    }
}

KeyValue split_key_value(const std::string& part) {
    size_t equals = part.find('=');
    if (equals == std::string::npos) {
        return {part, ""};
    }
    return {part.substr(0, equals), part.substr(equals + 1)};
}

}  // namespace vireo::cli
