#include "cli/help_text.h"

#include <charconv>
#include <string>

#include <fmt/format.h>

namespace vireo::cli {

void tidy_help(CLI::App& app) {
    for (CLI::Option* option : app.get_options()) {
        if (option->get_positional() && option->get_lnames().empty() &&
            option->get_snames().empty()) {
            option->type_name("");
        }
    }
    for (CLI::App* command : app.get_subcommands({})) {
        tidy_help(*command);
    }
}

CLI::Validator whole_number(uint64_t min, uint64_t max, const char* what) {
    std::string allowed = fmt::format("{} to {} {}", min, max, what);
    return CLI::Validator(
        [min, max, allowed](std::string& text) -> std::string {
            uint64_t value = 0;
            const char* end = text.data() + text.size();
            auto [stop, error] = std::from_chars(text.data(), end, value);
            if (text.empty() || error != std::errc() || stop != end) {
                return fmt::format("'{}' is not a whole number ({})", text, allowed);
            }
            if (value < min || value > max) {
                return fmt::format("{} is out of range: {}", text, allowed);
            }
            return "";
        },
        "", "whole number");
}

}  // namespace vireo::cli
