#include "host/datastore_registry.h"

#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/api_error.h"

namespace vireo {
namespace {

class DatastoreRegistryTest : public testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/vireo-datastore-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        root_ = pattern;
        state_ = root_ / "state";
        std::filesystem::create_directories(root_ / "ds1");
        std::filesystem::create_directories(root_ / "ds2");
        database_.emplace(state_ / "vireod.db");
        registry_.emplace(*database_);
    }
    void TearDown() override {
        registry_.reset();
        database_.reset();
        std::filesystem::remove_all(root_);
    }

    // The status and message of the ApiError `action` throws.
    std::pair<int, std::string> refusal(const std::function<void()>& action) {
        try {
            action();
        } catch (const ApiError& e) {
            return {e.status(), e.what()};
        }
        ADD_FAILURE() << "not refused";
        return {};
    }
    void expect_refused(const std::function<void()>& action, int status, const std::string& text) {
        auto [got_status, message] = refusal(action);
        EXPECT_EQ(got_status, status) << message;
        EXPECT_NE(message.find(text), std::string::npos) << message;
    }
    void make_vm(const std::filesystem::path& datastore, const std::string& vm) {
        std::filesystem::create_directories(datastore / vm);
        std::ofstream(datastore / vm / "vm.json") << "{}";
    }
    void write_legacy_file(const nlohmann::json& datastores) {
        std::ofstream(state_ / "datastores.json")
            << nlohmann::json{{"version", 1}, {"datastores", datastores}}.dump();
    }

    std::filesystem::path root_;
    std::filesystem::path state_;
    std::optional<HostDatabase> database_;
    std::optional<DatastoreRegistry> registry_;
};

TEST_F(DatastoreRegistryTest, EmptyAtFirst) {
    EXPECT_TRUE(registry_->list().empty());
    EXPECT_FALSE(registry_->find("a").has_value());
}

TEST_F(DatastoreRegistryTest, AddListRemoveAndKeptInTheDatabase) {
    Datastore added = registry_->add("local-1", root_ / "ds1" / ".." / "ds1");
    EXPECT_EQ(added.path, std::filesystem::canonical(root_ / "ds1"));
    EXPECT_FALSE(added.added.empty());
    registry_->add("nfs_2.b", root_ / "ds2");
    // The database opened again (a vireod restarted) has both.
    HostDatabase again(state_ / "vireod.db");
    std::vector<Datastore> listed = DatastoreRegistry(again).list();
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0].name, "local-1");
    EXPECT_EQ(listed[1].name, "nfs_2.b");
    EXPECT_EQ(registry_->find("nfs_2.b")->path, std::filesystem::canonical(root_ / "ds2"));

    Datastore removed = registry_->remove("local-1", false);
    EXPECT_EQ(removed.name, "local-1");
    ASSERT_EQ(registry_->list().size(), 1u);
    EXPECT_TRUE(std::filesystem::is_directory(root_ / "ds1"));  // files untouched
}

TEST_F(DatastoreRegistryTest, RefusesBadNamesAndPathsNamingTheField) {
    for (const char* name : {"", "Upper", "a/b", "a b", ".", "..", "é"}) {
        expect_refused([&] { registry_->add(name, root_ / "ds1"); }, 400, "name: ");
    }
    expect_refused([&] { registry_->add(std::string(65, 'a'), root_ / "ds1"); }, 400, "1 to 64");
    expect_refused([&] { registry_->add("a", "relative/ds1"); }, 400, "not an absolute path");
    expect_refused([&] { registry_->add("a", root_ / "missing"); }, 400, "no such directory");
    std::ofstream(root_ / "file") << "x";
    expect_refused([&] { registry_->add("a", root_ / "file"); }, 400, "path: ");
    registry_->add("a", root_ / "ds1");
    expect_refused([&] { registry_->add("a", root_ / "ds2"); }, 409, "exists already");
    expect_refused([&] { registry_->add("b", root_ / "ds1" / "."); }, 409, "is datastore 'a'");
    expect_refused([&] { registry_->remove("zzz", false); }, 404, "no such datastore");
    EXPECT_EQ(registry_->list().size(), 1u);
}

TEST_F(DatastoreRegistryTest, RemoveRefusesWhileVmFoldersRemainUnlessForced) {
    registry_->add("a", root_ / "ds1");
    make_vm(root_ / "ds1", "web");
    std::filesystem::create_directories(root_ / "ds1" / "not-a-vm");  // no vm.json
    EXPECT_EQ(DatastoreRegistry::vm_folders(root_ / "ds1"), std::vector<std::string>{"web"});
    expect_refused([&] { registry_->remove("a", false); }, 409, "holds 1 VM folder(s) (web)");
    EXPECT_EQ(registry_->list().size(), 1u);
    registry_->remove("a", true);
    EXPECT_TRUE(registry_->list().empty());
    EXPECT_TRUE(std::filesystem::exists(root_ / "ds1" / "web" / "vm.json"));
}

TEST_F(DatastoreRegistryTest, RemoveRefusesWhileVmsAreRegisteredEvenForced) {
    registry_->add("a", root_ / "ds1");
    make_vm(root_ / "ds1", "web");
    database_->insert_vm({"web", "a", HostDatabase::VmStage::registered, utc_now()});
    expect_refused([&] { registry_->remove("a", true); }, 409, "registered on it (web)");
    EXPECT_EQ(registry_->list().size(), 1u);
    database_->delete_vm("web");
    registry_->remove("a", true);
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

TEST_F(DatastoreRegistryTest, ImportsTheFileOfEarlierVersionsOnce) {
    registry_->add("kept", root_ / "ds2");
    write_legacy_file({{{"name", "local"}, {"path", (root_ / "ds1").string()}},
                       {{"name", "kept"}, {"path", "/elsewhere"}}});  // the name is taken
    EXPECT_EQ(registry_->import_legacy_file(state_), 1u);
    std::vector<Datastore> listed = registry_->list();
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[1].name, "local");
    EXPECT_EQ(listed[1].path, root_ / "ds1");
    EXPECT_EQ(listed[0].path, std::filesystem::canonical(root_ / "ds2"));  // not replaced
    EXPECT_FALSE(std::filesystem::exists(state_ / "datastores.json"));
    EXPECT_TRUE(std::filesystem::exists(state_ / "datastores.json.imported"));
    EXPECT_EQ(registry_->import_legacy_file(state_), 0u);

    // A crash after the import but before the rename: the same file again adds nothing.
    std::filesystem::rename(state_ / "datastores.json.imported", state_ / "datastores.json");
    EXPECT_EQ(registry_->import_legacy_file(state_), 0u);
    EXPECT_EQ(registry_->list().size(), 2u);
}

TEST_F(DatastoreRegistryTest, AMalformedOldFileIsNamedAndLeftAlone) {
    std::ofstream(state_ / "datastores.json") << "{not json";
    try {
        registry_->import_legacy_file(state_);
        ADD_FAILURE() << "not refused";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("datastores.json"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(registry_->list().empty());
    std::ifstream in(state_ / "datastores.json");
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "{not json");
}

TEST_F(DatastoreRegistryTest, ConcurrentAddsAreAllKept) {
    // API requests are served on threads of their own: none may lose another's add.
    constexpr int kWriters = 8;
    std::vector<std::thread> writers;
    for (int i = 0; i < kWriters; ++i) {
        std::filesystem::create_directories(root_ / ("d" + std::to_string(i)));
        writers.emplace_back([this, i] {
            registry_->add("d" + std::to_string(i), root_ / ("d" + std::to_string(i)));
        });
    }
    for (std::thread& writer : writers) {
        writer.join();
    }
    EXPECT_EQ(registry_->list().size(), size_t{kWriters});
}

}  // namespace
}  // namespace vireo
