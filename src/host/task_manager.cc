#include "host/task_manager.h"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "host/api_error.h"

namespace vireo {

void TaskProgress::report(double fraction) {
    fraction_ = std::clamp(fraction, 0.0, 1.0);
    if (cancelled_) {
        throw TaskCancelled();
    }
}

TaskManager::TaskManager(HostDatabase& database) : database_(database) {
    if (size_t interrupted = database_.fail_running_tasks(
            "interrupted: vireod ended while it ran (what it left was cleaned up at the next "
            "start)")) {
        spdlog::warn("{} task(s) interrupted by the end of the previous vireod: marked failed",
                     interrupted);
    }
}

TaskManager::~TaskManager() {
    {
        std::lock_guard lock(mutex_);
        for (auto& [id, task] : running_) {
            task->cancelled = true;
        }
    }
    // Each task stops at its next progress report and undoes what it did.
    while (true) {
        {
            std::lock_guard lock(mutex_);
            if (running_.empty()) {
                break;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (std::thread& thread : finished_) {
        thread.join();
    }
}

HostDatabase::Task TaskManager::start(const std::string& kind, const std::string& vm, Work work) {
    std::lock_guard lock(mutex_);
    for (std::thread& thread : finished_) {
        thread.join();
    }
    finished_.clear();
    HostDatabase::Task task = database_.insert_task(kind, vm);
    auto running = std::make_shared<Running>();
    running->vm = vm;
    running_[task.id] = running;
    database_.add_event(vm, kind + ".started", fmt::format("task {} started", task.id));
    running->thread = std::thread([this, id = task.id, kind, vm, running, work = std::move(work)] {
        TaskProgress progress(running->cancelled, running->progress);
        std::string state = "succeeded";
        std::string message;
        try {
            message = work(progress);
        } catch (const TaskCancelled&) {
            state = "cancelled";
            message = "cancelled; what it had done was undone";
        } catch (const std::exception& error) {
            state = "failed";
            message = error.what();
        }
        spdlog::info("task {} ({} of '{}'): {}: {}", id, kind, vm, state, message);
        // Ended in the database and gone from running_ at once: a cancel sees either.
        std::lock_guard done(mutex_);
        database_.transaction([&] {
            database_.finish_task(id, state, message);
            database_.add_event(vm, fmt::format("{}.{}", kind, state),
                                fmt::format("task {}: {}", id, message));
        });
        finished_.push_back(std::move(running->thread));
        running_.erase(id);
    });
    return with_progress(task);
}

HostDatabase::Task TaskManager::with_progress(HostDatabase::Task task) {
    auto found = running_.find(task.id);
    if (found != running_.end() && task.state == "running") {
        task.progress = found->second->progress;
    }
    return task;
}

std::vector<HostDatabase::Task> TaskManager::list() {
    std::lock_guard lock(mutex_);
    std::vector<HostDatabase::Task> tasks = database_.tasks();
    for (HostDatabase::Task& task : tasks) {
        task = with_progress(task);
    }
    return tasks;
}

HostDatabase::Task TaskManager::get(int64_t id) {
    std::lock_guard lock(mutex_);
    std::vector<HostDatabase::Task> found = database_.tasks(id);
    if (found.empty()) {
        refuse(404, "no task {} on this host", id);
    }
    return with_progress(found[0]);
}

HostDatabase::Task TaskManager::cancel(int64_t id) {
    HostDatabase::Task task = get(id);
    std::lock_guard lock(mutex_);
    auto found = running_.find(id);
    if (found == running_.end()) {
        refuse(409, "task {} has ended ({}): nothing to cancel", id, task.state);
    }
    found->second->cancelled = true;
    return task;
}

bool TaskManager::busy(const std::string& vm) {
    std::lock_guard lock(mutex_);
    for (const auto& [id, task] : running_) {
        if (task->vm == vm) {
            return true;
        }
    }
    return false;
}

}  // namespace vireo
