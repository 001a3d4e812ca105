#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace vireo::cli {

// A progress bar on stderr for long operations (clone, convert), drawn only
// when stderr is a terminal, so that logs and pipes get nothing but results:
//   clone  [##########..........]  50%  512.0 MiB of 1.0 GiB
// Redrawn at most ten times a second; the last line stays on the screen.
class Progress {
public:
    Progress(std::string label, uint64_t total);
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    bool enabled() const { return enabled_; }
    void update(uint64_t done);
    // Draws the final state and ends the line.
    void finish();

    // One line of the bar, `width` columns at most.
    static std::string render(std::string_view label, uint64_t done, uint64_t total, size_t width);

private:
    void draw(uint64_t done);

    std::string label_;
    uint64_t total_;
    uint64_t done_ = 0;
    bool enabled_;
    bool drawn_ = false;
    bool finished_ = false;
    size_t width_ = 80;
    std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace vireo::cli
