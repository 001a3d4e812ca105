#include "net/switch_steering.h"

#include <gtest/gtest.h>

#include "net/nftables.h"

namespace vireo {
namespace {

using Pins = std::map<std::string, std::string>;

VirtualSwitch two_active(std::vector<std::string> standby = {}) {
    VirtualSwitch vswitch;
    vswitch.name = "vs0";
    vswitch.uplinks = {"eth1", "eth2"};
    for (const std::string& uplink : standby) {
        vswitch.uplinks.push_back(uplink);
    }
    vswitch.teaming.standby = std::move(standby);
    return vswitch;
}

TEST(SwitchSteering, PortsSpreadOverTheActiveUplinksAndKeepTheirs) {
    VirtualSwitch vswitch = two_active();
    SteeringPlan plan = plan_steering(vswitch, {{"eth1", "eth2"}, {"tap0", "tap1", "tap2"}}, {});
    EXPECT_EQ(plan.carrying, (std::vector<std::string>{"eth1", "eth2"}));
    EXPECT_EQ(plan.pins, (Pins{{"tap0", "eth1"}, {"tap1", "eth2"}, {"tap2", "eth1"}}));
    // tap0 goes, tap3 comes: the others stay where they are, the new one
    // takes the uplink with fewer ports.
    plan = plan_steering(vswitch, {{"eth1", "eth2"}, {"tap1", "tap2", "tap3"}}, plan);
    EXPECT_EQ(plan.pins, (Pins{{"tap1", "eth2"}, {"tap2", "eth1"}, {"tap3", "eth1"}}));
}

TEST(SwitchSteering, AFailedUplinksPortsMoveAndComeBackOnFailback) {
    VirtualSwitch vswitch = two_active();
    std::vector<std::string> ports = {"tap0", "tap1"};
    SteeringPlan plan = plan_steering(vswitch, {{"eth1", "eth2"}, ports}, {});
    plan = plan_steering(vswitch, {{"eth2"}, ports}, plan);
    EXPECT_EQ(plan.carrying, std::vector<std::string>{"eth2"});
    EXPECT_EQ(plan.pins, (Pins{{"tap0", "eth2"}, {"tap1", "eth2"}}));
    plan = plan_steering(vswitch, {{"eth1", "eth2"}, ports}, plan);
    EXPECT_EQ(plan.pins, (Pins{{"tap0", "eth1"}, {"tap1", "eth2"}}));

    // Without failback a port stays on the uplink that took it over.
    vswitch.teaming.failback = false;
    plan = plan_steering(vswitch, {{"eth2"}, ports}, plan);
    plan = plan_steering(vswitch, {{"eth1", "eth2"}, ports}, plan);
    EXPECT_EQ(plan.carrying, (std::vector<std::string>{"eth1", "eth2"}));
    EXPECT_EQ(plan.pins, (Pins{{"tap0", "eth2"}, {"tap1", "eth2"}}));
    // ...until that one fails in turn.
    plan = plan_steering(vswitch, {{"eth1"}, ports}, plan);
    EXPECT_EQ(plan.pins, (Pins{{"tap0", "eth1"}, {"tap1", "eth1"}}));
}

TEST(SwitchSteering, StandbyUplinksFillTheActiveOnesPlaces) {
    VirtualSwitch vswitch = two_active({"eth3"});
    std::vector<std::string> ports = {"tap0", "tap1"};
    SteeringPlan plan = plan_steering(vswitch, {{"eth1", "eth2", "eth3"}, ports}, {});
    EXPECT_EQ(plan.carrying, (std::vector<std::string>{"eth1", "eth2"}));
    plan = plan_steering(vswitch, {{"eth2", "eth3"}, ports}, plan);
    EXPECT_EQ(plan.carrying, (std::vector<std::string>{"eth2", "eth3"}));
    EXPECT_EQ(plan.pins.at("tap1"), "eth2");
    EXPECT_EQ(plan.pins.at("tap0"), "eth3");
    // No uplink with a link: nothing carries, and no port is steered anywhere.
    plan = plan_steering(vswitch, {{}, ports}, plan);
    EXPECT_TRUE(plan.carrying.empty());
    EXPECT_TRUE(plan.pins.empty());
    EXPECT_EQ(plan.homes.size(), 2u);
}

// The table is what nft accepts: checked by nft itself, without applying it.
TEST(SwitchSteering, TheTableIsValidNftablesForBothPolicies) {
    VirtualSwitch vswitch = two_active();
    SteeringPlan plan = plan_steering(vswitch, {{"eth1", "eth2"}, {"tap0", "tap1"}}, {});
    std::vector<MacAddress> macs = {{0x02, 0x76, 0x69, 0, 0, 1}};
    for (auto policy : {NicTeaming::LoadBalancing::PortId, NicTeaming::LoadBalancing::SourceMac}) {
        vswitch.teaming.load_balancing = policy;
        std::string table = steering_table(vswitch, plan, macs);
        EXPECT_NE(table.find("add element bridge vireo-steer-vs0 pins { \"tap0\" . \"eth1\" }"),
                  std::string::npos)
            << table;
        EXPECT_NE(table.find("local_macs { 02:76:69:00:00:01 }"), std::string::npos);
        bool by_mac = policy == NicTeaming::LoadBalancing::SourceMac;
        EXPECT_EQ(table.find("jhash ether saddr mod 2") != std::string::npos, by_mac);
        EXPECT_NO_THROW(Nftables().check(table, "steering"));
    }
    // Nothing carrying: no hash over zero uplinks.
    std::string table = steering_table(vswitch, SteeringPlan{}, {});
    EXPECT_EQ(table.find("jhash"), std::string::npos);
}

}  // namespace
}  // namespace vireo
