#pragma once

#include <functional>
#include <map>

namespace vireo {

// The VMM's main thread: waits on file descriptors (signals, the machine's end,
// the control socket and its clients, the console) and calls their handlers.
// Handlers may add and remove descriptors, their own included.
class EventLoop {
public:
    using Handler = std::function<void()>;

    void add(int fd, Handler on_readable);
    void remove(int fd);
    // Waits and dispatches until stop() is called.
    void run();
    void stop() { running_ = false; }

private:
    std::map<int, Handler> handlers_;
    bool running_ = false;
};

}  // namespace vireo
