#pragma once

#include <string>
#include <vector>

namespace vireo {

// What a finished program left behind.
struct ProcessResult {
    int status = 0;  // its exit status; 128 + N when signal N ended it
    std::string out;
    std::string err;
};

// Runs `argv` (argv[0] looked up in PATH, then in /usr/sbin and /sbin) to its
// end with `input` on its stdin, and collects what it printed. Throws
// vireo::Error only when it could not be started.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input = "");

}  // namespace vireo
