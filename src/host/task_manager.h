#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "host/host_database.h"

namespace vireo {

// What a task's work throws when it sees it was cancelled.
class TaskCancelled : public Error {
public:
    TaskCancelled() : Error("cancelled") {}
};

// What a task's work reports to, and asks whether to go on.
class TaskProgress {
public:
    explicit TaskProgress(std::atomic<bool>& cancelled, std::atomic<double>& fraction)
        : cancelled_(cancelled), fraction_(fraction) {}
    // Records how far along it is (0 to 1); throws TaskCancelled once the
    // task was cancelled, so the work stops at its next step and undoes.
    void report(double fraction);

private:
    std::atomic<bool>& cancelled_;
    std::atomic<double>& fraction_;
};

// Long operations (clone, snapshot delete) as tasks, as vCenter and Proxmox
// run them: the request answers at once (202) with a task, which runs on a
// thread of its own, reports progress, can be cancelled, and ends succeeded,
// failed (with the reason) or cancelled; each is recorded in the host
// database. A task a vireod's end interrupts is marked failed at the next
// start (what it left behind is the inventory's recovery to clean up).
class TaskManager {
public:
    // The work: returns the result's message; throws to fail (TaskCancelled
    // when it saw a cancel). It must undo what it did before it throws.
    using Work = std::function<std::string(TaskProgress&)>;

    explicit TaskManager(HostDatabase& database);
    ~TaskManager();  // cancels what still runs, and waits for it
    TaskManager(const TaskManager&) = delete;
    TaskManager& operator=(const TaskManager&) = delete;

    HostDatabase::Task start(const std::string& kind, const std::string& vm, Work work);
    // Every task, or one: with a running task's progress now. 404 for none.
    std::vector<HostDatabase::Task> list();
    HostDatabase::Task get(int64_t id);
    // Asks a running task to stop; 409 when it has ended already.
    HostDatabase::Task cancel(int64_t id);
    // Whether a task of `vm` is running (a VM being cloned must stay off).
    bool busy(const std::string& vm);

private:
    struct Running {
        std::string vm;
        std::atomic<bool> cancelled = false;
        std::atomic<double> progress = 0;
        std::thread thread;
    };
    HostDatabase::Task with_progress(HostDatabase::Task task);

    HostDatabase& database_;
    std::mutex mutex_;
    std::map<int64_t, std::shared_ptr<Running>> running_;
    std::vector<std::thread> finished_;  // joined at the next start and at the end
};

}  // namespace vireo
