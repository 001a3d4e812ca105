#include "host/datastore_registry.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace vireo {
namespace {

class DatastoreRegistryTest : public testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/vireo-datastore-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        root_ = pattern;
        state_ = root_ / "state";  // created by the first add
        std::filesystem::create_directories(root_ / "ds1");
        std::filesystem::create_directories(root_ / "ds2");
    }
    void TearDown() override { std::filesystem::remove_all(root_); }

    std::string refusal(const std::function<void()>& action) {
        try {
            action();
        } catch (const Error& e) {
            return e.what();
        }
        ADD_FAILURE() << "not refused";
        return {};
    }
    void make_vm(const std::filesystem::path& datastore, const std::string& vm) {
        std::filesystem::create_directories(datastore / vm);
        std::ofstream(datastore / vm / "vm.json") << "{}";
    }

    std::filesystem::path root_;
    std::filesystem::path state_;
};

TEST_F(DatastoreRegistryTest, EmptyWithoutAFile) {
    DatastoreRegistry registry(state_);
    EXPECT_TRUE(registry.list().empty());
    EXPECT_FALSE(registry.find("a").has_value());
    EXPECT_FALSE(std::filesystem::exists(state_));  // reading creates nothing
}

TEST_F(DatastoreRegistryTest, AddListRemove) {
    DatastoreRegistry registry(state_);
    Datastore added = registry.add("local-1", root_ / "ds1" / ".." / "ds1");
    EXPECT_EQ(added.path, std::filesystem::canonical(root_ / "ds1"));
    registry.add("nfs_2.b", root_ / "ds2");
    // A second registry on the same directory (another command) sees both.
    std::vector<Datastore> listed = DatastoreRegistry(state_).list();
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0].name, "local-1");
    EXPECT_EQ(listed[1].name, "nfs_2.b");
    EXPECT_EQ(registry.find("nfs_2.b")->path, std::filesystem::canonical(root_ / "ds2"));

    Datastore removed = registry.remove("local-1", false);
    EXPECT_EQ(removed.name, "local-1");
    ASSERT_EQ(registry.list().size(), 1u);
    EXPECT_TRUE(std::filesystem::is_directory(root_ / "ds1"));  // files untouched

    // The file is the documented JSON, with no temporary left behind.
    nlohmann::json document = nlohmann::json::parse(std::ifstream(state_ / "datastores.json"));
    EXPECT_EQ(document["version"], 1);
    EXPECT_EQ(document["datastores"][0]["name"], "nfs_2.b");
    EXPECT_FALSE(std::filesystem::exists(state_ / "datastores.json.tmp"));
}

TEST_F(DatastoreRegistryTest, RefusesBadNamesAndPaths) {
    DatastoreRegistry registry(state_);
    for (const char* name : {"", "Upper", "a/b", "a b", ".", "..", "é"}) {
        EXPECT_NE(refusal([&] { registry.add(name, root_ / "ds1"); }).find("a name is"),
                  std::string::npos)
            << name;
    }
    EXPECT_NE(refusal([&] { registry.add(std::string(65, 'a'), root_ / "ds1"); }).find("1 to 64"),
              std::string::npos);
    EXPECT_NE(refusal([&] { registry.add("a", root_ / "missing"); }).find("no such directory"),
              std::string::npos);
    std::ofstream(root_ / "file") << "x";
    EXPECT_NE(refusal([&] { registry.add("a", root_ / "file"); }).find("not a directory"),
              std::string::npos);
    registry.add("a", root_ / "ds1");
    EXPECT_NE(refusal([&] { registry.add("a", root_ / "ds2"); }).find("exists already"),
              std::string::npos);
    EXPECT_NE(refusal([&] { registry.add("b", root_ / "ds1"); }).find("is datastore 'a'"),
              std::string::npos);
    EXPECT_NE(refusal([&] { registry.remove("zzz", false); }).find("no such datastore"),
              std::string::npos);
    EXPECT_EQ(registry.list().size(), 1u);
}

TEST_F(DatastoreRegistryTest, RemoveRefusesWhileVmFoldersRemainUnlessForced) {
    DatastoreRegistry registry(state_);
    registry.add("a", root_ / "ds1");
    make_vm(root_ / "ds1", "web");
    std::filesystem::create_directories(root_ / "ds1" / "not-a-vm");  // no vm.json
    EXPECT_EQ(DatastoreRegistry::vm_folders(root_ / "ds1"), std::vector<std::string>{"web"});
    std::string why = refusal([&] { registry.remove("a", false); });
    EXPECT_NE(why.find("holds 1 VM folder"), std::string::npos) << why;
    EXPECT_NE(why.find("--force"), std::string::npos) << why;
    EXPECT_EQ(registry.list().size(), 1u);
    registry.remove("a", true);
    EXPECT_TRUE(registry.list().empty());
    EXPECT_TRUE(std::filesystem::exists(root_ / "ds1" / "web" / "vm.json"));
}

TEST_F(DatastoreRegistryTest, UsageMeasuresTheFileSystem) {
    make_vm(root_ / "ds1", "b");
    make_vm(root_ / "ds1", "a");
    DatastoreUsage usage = DatastoreRegistry::usage(root_ / "ds1");
    EXPECT_TRUE(usage.reachable);
    EXPECT_GT(usage.capacity, 0u);
    EXPECT_LE(usage.free, usage.capacity);
    EXPECT_EQ(usage.vm_folders, (std::vector<std::string>{"a", "b"}));
    EXPECT_FALSE(DatastoreRegistry::usage(root_ / "gone").reachable);
}

TEST_F(DatastoreRegistryTest, MalformedFileIsNamedNotOverwritten) {
    std::filesystem::create_directories(state_);
    std::ofstream(state_ / "datastores.json") << "{not json";
    DatastoreRegistry registry(state_);
    std::string why = refusal([&] { registry.list(); });
    EXPECT_NE(why.find("datastores.json: malformed"), std::string::npos) << why;
    refusal([&] { registry.add("a", root_ / "ds1"); });
    std::ifstream in(state_ / "datastores.json");
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "{not json");
}

TEST_F(DatastoreRegistryTest, ConcurrentAddsAreAllKept) {
    // Processes adding at once: the lock serializes read-modify-write, so none is lost.
    constexpr int kWriters = 8;
    for (int i = 0; i < kWriters; ++i) {
        std::filesystem::create_directories(root_ / ("d" + std::to_string(i)));
    }
    std::vector<pid_t> children;
    for (int i = 0; i < kWriters; ++i) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            try {
                DatastoreRegistry(state_).add("d" + std::to_string(i),
                                              root_ / ("d" + std::to_string(i)));
            } catch (...) {
                _exit(1);
            }
            _exit(0);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    EXPECT_EQ(DatastoreRegistry(state_).list().size(), size_t{kWriters});
}

TEST_F(DatastoreRegistryTest, StateDirComesFromTheEnvironment) {
    setenv("VIREO_STATE_DIR", state_.c_str(), 1);
    EXPECT_EQ(DatastoreRegistry::default_state_dir(), state_);
    unsetenv("VIREO_STATE_DIR");
    EXPECT_EQ(DatastoreRegistry::default_state_dir(), "/var/lib/vireo");
}

}  // namespace
}  // namespace vireo
