#pragma once

#include <mutex>
#include <vector>

#include "devices/interrupts.h"

namespace vireo {

// An IrqLine that remembers every level it was set to.
class RecordingIrqLine : public IrqLine {
public:
    void set_level(bool asserted) override {
        std::lock_guard lock(mutex_);
        levels_.push_back(asserted);
    }
    bool level() const {
        std::lock_guard lock(mutex_);
        return !levels_.empty() && levels_.back();
    }
    // 0 -> 1 transitions, the edges an edge-triggered IOAPIC pin would latch.
    int rising_edges() const {
        std::lock_guard lock(mutex_);
        int edges = 0;
        bool previous = false;
        for (bool level : levels_) {
            edges += level && !previous;
            previous = level;
        }
        return edges;
    }
    std::vector<bool> levels() const {
        std::lock_guard lock(mutex_);
        return levels_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<bool> levels_;
};

}  // namespace vireo
