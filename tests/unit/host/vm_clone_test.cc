// Clones: a full clone copies the disks, a linked one rests on a template's;
// a cancel in the middle and a crash before the end leave no trace.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "block/image_factory.h"
#include "host/api_error.h"
#include "host/vm_inventory.h"
#include "host/vm_snapshots.h"

namespace vireo {
namespace {

using nlohmann::json;

class VmCloneTest : public testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/vireo-clone-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        root_ = pattern;
        std::filesystem::create_directories(root_ / "ds1");
        std::ofstream(root_ / "kernel.elf") << "not really a kernel";
        CreateOptions disk;
        disk.size = 8 << 20;
        create_image(root_ / "disk.qcow2", disk);
        database_.emplace(root_ / "state" / "vireod.db");
        inventory_.emplace(*database_);
        inventory_->datastores().add("ds1", root_ / "ds1");
        inventory_->create("gold", "ds1",
                           {{"vcpus", 1},
                            {"memory_mib", 64},
                            {"boot", {{"kernel", (root_ / "kernel.elf").string()}}},
                            {"disks", {{{"path", (root_ / "disk.qcow2").string()}}}}});
    }
    void TearDown() override {
        inventory_.reset();
        database_.reset();
        std::filesystem::remove_all(root_);
    }
    // No folder, staging folder or record of `name` is left.
    void expect_no_trace(const std::string& name) {
        EXPECT_FALSE(inventory_->find(name));
        EXPECT_FALSE(database_->find_vm(name));
        for (const auto& entry : std::filesystem::directory_iterator(root_ / "ds1")) {
            EXPECT_EQ(entry.path().filename().string().find(name), std::string::npos)
                << entry.path();
        }
    }

    std::filesystem::path root_;
    std::optional<HostDatabase> database_;
    std::optional<VmInventory> inventory_;
};

TEST_F(VmCloneTest, AFullCloneHasDisksOfItsOwn) {
    std::vector<double> reports;
    VmEntry copy = inventory_->clone(inventory_->plan_clone("gold", "copy", "ds1", false),
                                     [&](double fraction) { reports.push_back(fraction); });
    json definition = json::parse(std::ifstream(copy.definition()));
    EXPECT_EQ(definition["name"], "copy");
    EXPECT_EQ(definition["disks"][0]["path"], "disk0.qcow2");
    ImageInfo info = image_info(copy.folder / "disk0.qcow2");
    EXPECT_TRUE(info.backing_chain.empty());
    EXPECT_EQ(info.virtual_size, 8u << 20);
    ASSERT_FALSE(reports.empty());
    EXPECT_EQ(reports.back(), 1);
}

TEST_F(VmCloneTest, ALinkedCloneNeedsATemplateAndRestsOnItsDisks) {
    try {
        inventory_->plan_clone("gold", "thin", "ds1", true);
        FAIL() << "a linked clone of a VM that is not a template";
    } catch (const ApiError& error) {
        EXPECT_EQ(error.status(), 409);
    }
    expect_no_trace("thin");
    inventory_->make_template("gold");
    VmEntry thin =
        inventory_->clone(inventory_->plan_clone("gold", "thin", "ds1", true), [](double) {});
    ImageInfo info = image_info(thin.folder / "disk0.qcow2");
    ASSERT_EQ(info.backing_chain.size(), 1u);
    EXPECT_EQ(info.backing_chain[0], root_ / "disk.qcow2");
    EXPECT_TRUE(inventory_->get("gold").is_template);
}

TEST_F(VmCloneTest, ACancelInTheMiddleLeavesNoTrace) {
    VmInventory::ClonePlan plan = inventory_->plan_clone("gold", "copy", "ds1", false);
    EXPECT_THROW(inventory_->clone(plan, [](double) { throw std::runtime_error("cancelled"); }),
                 std::runtime_error);
    expect_no_trace("copy");
}

TEST_F(VmCloneTest, ACrashBeforeTheEndIsUndoneAtTheNextStart) {
    inventory_->plan_clone("gold", "copy", "ds1", false);  // then vireod dies
    std::filesystem::create_directory(root_ / "ds1" / ".copy.vireo-creating");
    inventory_->recover();
    expect_no_trace("copy");
}

TEST_F(VmCloneTest, SnapshotsAreTakenOnEveryWritableDiskAndReverted) {
    VmEntry gold = inventory_->get("gold");
    EXPECT_EQ(create_snapshot(gold, "s1").disks, 1u);
    ASSERT_EQ(list_snapshots(gold, false).size(), 1u);
    EXPECT_EQ(list_snapshots(gold, false)[0].name, "s1");
    revert_snapshot(gold, "s1");
    delete_snapshot(gold, "s1", [](double) {});
    EXPECT_TRUE(list_snapshots(gold, false).empty());
}

}  // namespace
}  // namespace vireo
