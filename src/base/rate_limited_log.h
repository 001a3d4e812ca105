#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace vireo {

// A log for what a guest does wrong: a guest can repeat a bad access millions of
// times a second, so at most `burst` lines per `window` reach the log and the next
// line that gets through says how many were dropped. Thread-safe.
class RateLimitedLog {
public:
    explicit RateLimitedLog(std::string source, unsigned burst = 10,
                            std::chrono::steady_clock::duration window = std::chrono::seconds(10))
        : source_(std::move(source)), burst_(burst), window_(window) {}

    template <typename... Args>
    void warn(fmt::format_string<Args...> format, Args&&... args) {
        log(spdlog::level::warn, format, std::forward<Args>(args)...);
    }
    template <typename... Args>
    void debug(fmt::format_string<Args...> format, Args&&... args) {
        log(spdlog::level::debug, format, std::forward<Args>(args)...);
    }

private:
    template <typename... Args>
    void log(spdlog::level::level_enum level, fmt::format_string<Args...> format, Args&&... args) {
        // Lines below the logger's level must not use up the budget.
        if (!spdlog::should_log(level)) {
            return;
        }
        if (auto dropped = admit()) {
            std::string message = fmt::format(format, std::forward<Args>(args)...);
            if (*dropped > 0) {
                spdlog::log(level, "{}: {} ({} similar lines dropped)", source_, message, *dropped);
            } else {
                spdlog::log(level, "{}: {}", source_, message);
            }
        }
    }

    // The number of lines dropped since the last one logged, or nothing if this
    // line must be dropped too.
    std::optional<uint64_t> admit() {
        std::lock_guard lock(mutex_);
        auto now = std::chrono::steady_clock::now();
        if (now - window_start_ >= window_) {
            window_start_ = now;
            logged_in_window_ = 0;
        }
        if (logged_in_window_ >= burst_) {
            ++dropped_;
            return std::nullopt;
        }
        ++logged_in_window_;
        return std::exchange(dropped_, 0);
    }

    const std::string source_;
    const unsigned burst_;
    const std::chrono::steady_clock::duration window_;
    std::mutex mutex_;
    std::chrono::steady_clock::time_point window_start_{};
    unsigned logged_in_window_ = 0;
    uint64_t dropped_ = 0;
};

}  // namespace vireo
