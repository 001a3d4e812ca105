// Tasks: succeed, fail with their reason, stop when cancelled, and a task a
// vireod's end interrupted reads as failed at the next start.
#include "host/task_manager.h"

#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "host/api_error.h"

namespace vireo {
namespace {

class TaskManagerTest : public testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/vireo-tasks-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        root_ = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(root_); }

    static HostDatabase::Task wait(TaskManager& tasks, int64_t id) {
        HostDatabase::Task task = tasks.get(id);
        for (int i = 0; i < 1000 && task.state == "running"; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            task = tasks.get(id);
        }
        return task;
    }

    std::filesystem::path root_;
};

TEST_F(TaskManagerTest, EndsSucceededOrFailedWithItsReason) {
    HostDatabase database(root_ / "vireod.db");
    TaskManager tasks(database);
    int64_t good = tasks
                       .start("vm.clone", "a",
                              [](TaskProgress& progress) {
                                  progress.report(0.5);
                                  return std::string("done well");
                              })
                       .id;
    int64_t bad =
        tasks
            .start("vm.clone", "b",
                   [](TaskProgress&) -> std::string { fail("disk0.qcow2: no space left"); })
            .id;
    HostDatabase::Task first = wait(tasks, good);
    EXPECT_EQ(first.state, "succeeded");
    EXPECT_EQ(first.message, "done well");
    EXPECT_EQ(first.progress, 1);
    EXPECT_FALSE(first.finished.empty());
    HostDatabase::Task second = wait(tasks, bad);
    EXPECT_EQ(second.state, "failed");
    EXPECT_EQ(second.message, "disk0.qcow2: no space left");
    EXPECT_EQ(tasks.list().size(), 2u);
    try {
        tasks.cancel(good);
        FAIL() << "an ended task was cancelled";
    } catch (const ApiError& error) {
        EXPECT_EQ(error.status(), 409);
    }
}

TEST_F(TaskManagerTest, ACancelStopsItAtItsNextReport) {
    HostDatabase database(root_ / "vireod.db");
    TaskManager tasks(database);
    std::atomic<bool> undone = false;
    std::atomic<bool> started = false;
    int64_t id = tasks
                     .start("vm.clone", "a",
                            [&](TaskProgress& progress) {
                                try {
                                    for (int step = 0;; ++step) {
                                        started = true;
                                        progress.report(step / 1e6);
                                        std::this_thread::sleep_for(std::chrono::milliseconds(1));
                                    }
                                } catch (const TaskCancelled&) {
                                    undone = true;
                                    throw;
                                }
                                return std::string();
                            })
                     .id;
    while (!started) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(tasks.busy("a"));
    EXPECT_FALSE(tasks.busy("b"));
    tasks.cancel(id);
    HostDatabase::Task task = wait(tasks, id);
    EXPECT_EQ(task.state, "cancelled");
    EXPECT_TRUE(undone);
    EXPECT_FALSE(tasks.busy("a"));
}

TEST_F(TaskManagerTest, ATaskInterruptedByTheEndOfVireodIsFailedAtTheNextStart) {
    {
        HostDatabase database(root_ / "vireod.db");
        database.insert_task("vm.clone", "a");  // as a killed vireod leaves it
    }
    HostDatabase database(root_ / "vireod.db");
    TaskManager tasks(database);
    std::vector<HostDatabase::Task> list = tasks.list();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].state, "failed");
    EXPECT_NE(list[0].message.find("interrupted"), std::string::npos);
}

}  // namespace
}  // namespace vireo
