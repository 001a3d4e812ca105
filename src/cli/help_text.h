#pragma once

#include <cstdint>

#include <CLI/CLI.hpp>

namespace vireo::cli {

// --help as a person would write it: a positional shows only its name (FILE,
// not "FILE TEXT"); options name their value where they are added (PATH,
// SIZE, N). Call once every command is added.
void tidy_help(CLI::App& app);

// A check for a whole number from `min` to `max`, whose refusal says what is
// allowed: "--cpus: 1000 is out of range: 1 to 64 virtual CPUs".
CLI::Validator whole_number(uint64_t min, uint64_t max, const char* what);

}  // namespace vireo::cli
