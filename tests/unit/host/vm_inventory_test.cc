#include "host/vm_inventory.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/api_error.h"

namespace vireo {
namespace {

using nlohmann::json;

class VmInventoryTest : public testing::Test {
protected:
    static std::filesystem::path make_root() {
        char pattern[] = "/tmp/vireo-inventory-XXXXXX";
        if (mkdtemp(pattern) == nullptr) {
            std::abort();
        }
        return pattern;
    }
    void SetUp() override {
        std::filesystem::create_directories(root_ / "ds1");
        std::ofstream(root_ / "kernel.elf") << "not really a kernel";
        HostDatabase database(root_ / "state" / "vireod.db");
        DatastoreRegistry(database).add("ds1", root_ / "ds1");
    }
    void TearDown() override { std::filesystem::remove_all(root_); }

    json definition() const {
        return {{"vcpus", 1},
                {"memory_mib", 64},
                {"boot", {{"kernel", (root_ / "kernel.elf").string()}}}};
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

    std::filesystem::path root_ = make_root();
};

TEST_F(VmInventoryTest, CreatesAFolderWithItsDefinitionAndFindsItAfterARestart) {
    {
        HostDatabase database(root_ / "state" / "vireod.db");
        VmInventory inventory(database);
        VmEntry web = inventory.create("web-1", "ds1", definition());
        EXPECT_EQ(web.folder, std::filesystem::canonical(root_ / "ds1") / "web-1");
        json written = json::parse(std::ifstream(web.definition()));
        EXPECT_EQ(written["name"], "web-1");
        EXPECT_EQ(written["console"]["output"], "file");
        EXPECT_EQ(written["console"]["path"], "console.log");
        EXPECT_EQ(written["memory_mib"], 64);
        ASSERT_EQ(database.events(0, 10).size(), 1u);
        EXPECT_EQ(database.events(0, 10)[0].kind, "vm.created");
    }
    HostDatabase again(root_ / "state" / "vireod.db");
    VmInventory inventory(again);
    inventory.recover();
    ASSERT_EQ(inventory.list().size(), 1u);
    EXPECT_EQ(inventory.get("web-1").datastore, "ds1");
}

TEST_F(VmInventoryTest, RefusesBadRequestsNamingTheFieldAndWritesNothing) {
    HostDatabase database(root_ / "state" / "vireod.db");
    VmInventory inventory(database);
    for (const char* name : {"", "../etc", "a/b", ".hidden", "x y"}) {
        auto [status, message] = refusal([&] { inventory.create(name, "ds1", definition()); });
        EXPECT_EQ(status, 400) << name;
        EXPECT_NE(message.find("name: "), std::string::npos) << message;
    }
    EXPECT_EQ(refusal([&] { inventory.create("vm", "nope", definition()); }).first, 400);
    json bad = definition();
    bad["memory_mib"] = 1;
    auto [status, message] = refusal([&] { inventory.create("vm", "ds1", bad); });
    EXPECT_EQ(status, 400);
    EXPECT_EQ(message, "definition: memory_mib: 1 is out of range (16 to 1048576)");
    bad = definition();
    bad["colour"] = "blue";
    EXPECT_EQ(refusal([&] { inventory.create("vm", "ds1", bad); }).first, 400);
    EXPECT_TRUE(inventory.list().empty());
    EXPECT_TRUE(std::filesystem::is_empty(root_ / "ds1"));
    EXPECT_TRUE(database.events(0, 10).empty());

    inventory.create("vm", "ds1", definition());
    EXPECT_EQ(refusal([&] { inventory.create("vm", "ds1", definition()); }).first, 409);
    std::filesystem::create_directory(root_ / "ds1" / "copied");
    EXPECT_EQ(refusal([&] { inventory.create("copied", "ds1", definition()); }).first, 409);
    EXPECT_EQ(refusal([&] { inventory.get("ghost"); }).first, 404);
}

TEST_F(VmInventoryTest, DeletesWithOrWithoutItsFiles) {
    HostDatabase database(root_ / "state" / "vireod.db");
    VmInventory inventory(database);
    VmEntry kept = inventory.create("kept", "ds1", definition());
    VmEntry gone = inventory.create("gone", "ds1", definition());
    inventory.remove("kept", false);
    inventory.remove("gone", true);
    EXPECT_TRUE(inventory.list().empty());
    EXPECT_TRUE(std::filesystem::exists(kept.definition()));
    EXPECT_FALSE(std::filesystem::exists(gone.folder));
    EXPECT_EQ(refusal([&] { inventory.remove("gone", true); }).first, 404);
}

// What a kill -9 of vireod in the middle of a create or a delete leaves, and
// what the next start makes of it.
TEST_F(VmInventoryTest, RecoveryFinishesOrUndoesWhatACrashInterrupted) {
    std::filesystem::path ds = std::filesystem::canonical(root_ / "ds1");
    HostDatabase database(root_ / "state" / "vireod.db");
    // Killed after the folder was renamed into place: it is whole.
    database.insert_vm({"renamed", "ds1", HostDatabase::VmStage::creating, utc_now()});
    std::filesystem::create_directory(ds / "renamed");
    std::ofstream(ds / "renamed" / "vm.json") << definition().dump();
    // Killed while the folder was being written: undone.
    database.insert_vm({"half", "ds1", HostDatabase::VmStage::creating, utc_now()});
    std::filesystem::create_directory(ds / ".half.vireo-creating");
    // Killed in the middle of deleting: finished.
    database.insert_vm({"doomed", "ds1", HostDatabase::VmStage::deleting, utc_now()});
    std::filesystem::create_directory(ds / "doomed");
    std::ofstream(ds / "doomed" / "vm.json") << "{}";

    VmInventory inventory(database);
    inventory.recover();
    std::vector<VmEntry> vms = inventory.list();
    ASSERT_EQ(vms.size(), 1u);
    EXPECT_EQ(vms[0].name, "renamed");
    EXPECT_FALSE(database.find_vm("half"));
    EXPECT_FALSE(database.find_vm("doomed"));
    EXPECT_FALSE(std::filesystem::exists(ds / ".half.vireo-creating"));
    EXPECT_FALSE(std::filesystem::exists(ds / "doomed"));
    EXPECT_FALSE(std::filesystem::exists(ds / ".doomed.vireo-deleting"));
}

// A kill -9 in the middle of a reconfigure, after the new definition was
// written but before it replaced vm.json: the old one stands, the new one goes.
TEST_F(VmInventoryTest, RecoveryRemovesTheDefinitionAnInterruptedReconfigureLeft) {
    HostDatabase database(root_ / "state" / "vireod.db");
    VmInventory inventory(database);
    VmEntry vm = inventory.create("web-1", "ds1", definition());
    std::ofstream(vm.folder / "vm.json.new") << "{\"vcpus\": 4, \"memo";

    inventory.recover();
    EXPECT_FALSE(std::filesystem::exists(vm.folder / "vm.json.new"));
    EXPECT_EQ(json::parse(std::ifstream(vm.definition()))["vcpus"], 1);
    ASSERT_EQ(inventory.list().size(), 1u);
}

}  // namespace
}  // namespace vireo
