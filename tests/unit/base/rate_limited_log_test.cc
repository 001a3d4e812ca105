#include "base/rate_limited_log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>
#include <thread>

namespace vireo {
namespace {

// Routes the default logger into a string for the test's duration.
class CapturedLog {
public:
    CapturedLog() : previous_(spdlog::default_logger()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(stream_);
        sink->set_pattern("%v");
        spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
    }
    ~CapturedLog() { spdlog::set_default_logger(previous_); }
    std::string text() const { return stream_.str(); }
    int lines() const {
        std::string all = text();
        return static_cast<int>(std::count(all.begin(), all.end(), '\n'));
    }

private:
    std::shared_ptr<spdlog::logger> previous_;
    std::ostringstream stream_;
};

TEST(RateLimitedLog, LogsABurstThenCountsWhatItDropped) {
    CapturedLog captured;
    RateLimitedLog log("dev", 3, std::chrono::milliseconds(50));
    for (int i = 0; i < 100; ++i) {
        log.warn("bad access {}", i);
    }
    EXPECT_EQ(captured.lines(), 3);
    EXPECT_NE(captured.text().find("dev: bad access 2\n"), std::string::npos);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    log.warn("bad access again");
    EXPECT_EQ(captured.lines(), 4);
    EXPECT_NE(captured.text().find("dev: bad access again (97 similar lines dropped)"),
              std::string::npos);
}

TEST(RateLimitedLog, LinesBelowTheLevelDoNotUseTheBudget) {
    CapturedLog captured;
    spdlog::set_level(spdlog::level::info);
    RateLimitedLog log("dev", 1);
    log.debug("hidden");
    log.warn("shown");
    EXPECT_EQ(captured.text(), "dev: shown\n");
}

}  // namespace
}  // namespace vireo
