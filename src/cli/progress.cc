#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "cli/human_size.h"

namespace vireo::cli {

namespace {

constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

}  // namespace

Progress::Progress(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total), enabled_(isatty(STDERR_FILENO) == 1) {
    winsize size{};
    if (enabled_ && ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
        width_ = size.ws_col;
    }
}

Progress::~Progress() {
    if (drawn_ && !finished_) {
        std::fputs("\n", stderr);  // an error message follows on a line of its own
    }
}

std::string Progress::render(std::string_view label, uint64_t done, uint64_t total, size_t width) {
    done = std::min(done, total);
    unsigned percent =
        total == 0 ? 100 : static_cast<unsigned>(static_cast<double>(done) * 100 / total);
    std::string tail =
        fmt::format("{:>3}%  {} of {}", percent, human_size(done), human_size(total));
    // The bar takes what the label and the figures leave, 10 to 40 columns.
    size_t fixed = label.size() + 4 + tail.size();  // "label [" + "] " + tail
    size_t bar = width > fixed + 10 ? std::min<size_t>(width - fixed, 40) : 10;
    size_t filled = total == 0 ? bar : static_cast<size_t>(static_cast<double>(done) * bar / total);
    std::string line = fmt::format("{} [{}{}] {}", label, std::string(filled, '#'),
                                   std::string(bar - filled, '.'), tail);
    if (line.size() > width && width > 0) {
        line.resize(width);
    }
    return line;
}

void Progress::draw(uint64_t done) {
    // \r returns to the start of the line; \33[K clears what a longer line left.
    std::string line = fmt::format("\r{}\33[K", render(label_, done, total_, width_ - 1));
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
}

void Progress::update(uint64_t done) {
    done_ = done;
    if (!enabled_ || finished_) {
        return;
    }
    auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_draw_ < kRedrawInterval) {
        return;
    }
    last_draw_ = now;
    draw(done);
}

void Progress::finish() {
    if (!enabled_ || finished_) {
        return;
    }
    draw(total_);
    std::fputs("\n", stderr);
    finished_ = true;
}

}  // namespace vireo::cli
