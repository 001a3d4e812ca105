#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace vireo {

// A readers-writer lock for disk requests: a request holds it shared from its
// submission to its completion, which may run on another call, or another
// thread, than the one that took it (std::shared_mutex forbids both);
// operations that free what requests use hold it exclusive. A reader never
// waits for a waiting writer, only for one that holds the gate: a thread
// with requests in flight may start more, and only it can complete them.
// Names as std::shared_mutex, so std::shared_lock and std::unique_lock work.
class RequestGate {
public:
    void lock() {
        std::unique_lock guard(mutex_);
        changed_.wait(guard, [&] { return !exclusive_ && shared_ == 0; });
        exclusive_ = true;
    }
    void unlock() {
        {
            std::lock_guard guard(mutex_);
            exclusive_ = false;
        }
        changed_.notify_all();
    }
    void lock_shared() {
        std::unique_lock guard(mutex_);
        changed_.wait(guard, [&] { return !exclusive_; });
        ++shared_;
    }
    void unlock_shared() {
        bool last;
        {
            std::lock_guard guard(mutex_);
            last = --shared_ == 0;
        }
        if (last) {
            changed_.notify_all();
        }
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    size_t shared_ = 0;
    bool exclusive_ = false;
};

}  // namespace vireo
