#include "net/network_config.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "net/switch_datapath.h"

namespace vireo {
namespace {

using nlohmann::json;

std::string refusal(const json& document) {
    try {
        NetworkConfig::from_json(document, "network.json");
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "not refused: " << document.dump();
    return {};
}

json two_switches() {
    return json::parse(R"({
        "switches": [{"name": "vSwitch0", "uplinks": ["eth1"]}, {"name": "vSwitch1", "mtu": 9000}],
        "portgroups": [
            {"name": "VM-Network", "switch": "vSwitch0"},
            {"name": "web", "switch": "vSwitch0", "vlan": 10},
            {"name": "trunk", "switch": "vSwitch1", "vlan": 4095}
        ]})");
}

TEST(NetworkConfig, ReadsSwitchesAndPortGroupsWithESXDefaults) {
    NetworkConfig config = NetworkConfig::from_json(two_switches(), "network.json");
    ASSERT_EQ(config.switches.size(), 2u);
    EXPECT_EQ(config.switches[0].mtu, 1500u);  // ESX's default
    EXPECT_EQ(config.switches[0].uplinks, std::vector<std::string>{"eth1"});
    EXPECT_EQ(config.switches[1].mtu, 9000u);
    EXPECT_TRUE(config.switches[1].uplinks.empty());
    EXPECT_EQ(config.find_portgroup("VM-Network")->vlan, PortGroup::kNoVlan);
    EXPECT_EQ(config.find_portgroup("web")->vlan, 10);
    EXPECT_EQ(config.portgroups_of("vSwitch0").size(), 2u);
    EXPECT_EQ(config.find_switch("nope"), nullptr);
}

TEST(NetworkConfig, WritesWhatItReads) {
    NetworkConfig config = NetworkConfig::from_json(two_switches(), "network.json");
    NetworkConfig again = NetworkConfig::from_json(config.to_json(), "again");
    EXPECT_EQ(again.to_json(), config.to_json());
}

TEST(NetworkConfig, RefusalsNameTheFieldAndTheRule) {
    json doc = two_switches();
    doc["switches"][0]["mtu"] = 100;
    EXPECT_NE(refusal(doc).find("switches[0].mtu: 100 is out of range (1280 to 9000)"),
              std::string::npos);
    doc = two_switches();
    doc["portgroups"][1]["vlan"] = 4096;
    EXPECT_NE(refusal(doc).find("portgroups[1].vlan: 4096 is out of range (0 to 4095)"),
              std::string::npos);
    doc = two_switches();
    doc["portgroups"][0]["switch"] = "vSwitch9";
    EXPECT_NE(refusal(doc).find("port group 'VM-Network': no switch 'vSwitch9'"),
              std::string::npos);
    doc = two_switches();
    doc["switches"][1]["name"] = "vSwitch0";
    EXPECT_NE(refusal(doc).find("switch 'vSwitch0' is defined twice"), std::string::npos);
    doc = two_switches();
    doc["switches"][0]["name"] = "a-name-longer-than-fifteen";
    EXPECT_NE(refusal(doc).find("an interface name has 1 to 15 characters"), std::string::npos);
    doc = two_switches();
    doc["portgroups"][0]["name"] = "VM Network";
    EXPECT_NE(refusal(doc).find("a port group's name is 1 to 64 of"), std::string::npos);
    doc = two_switches();
    doc["portgroups"][2]["name"] = "web";
    EXPECT_NE(refusal(doc).find("port group 'web' is defined twice"), std::string::npos);
    doc = two_switches();
    doc["switches"][1]["uplinks"] = {"eth1"};
    EXPECT_NE(refusal(doc).find("uplink eth1 is on two switches"), std::string::npos);
    doc = two_switches();
    doc["switches"][0]["colour"] = "blue";
    EXPECT_NE(refusal(doc).find("switches[0].colour: unknown field"), std::string::npos);
}

TEST(NicTeaming, ActiveStandbyAndUnusedUplinksInFailoverOrder) {
    json doc = two_switches();
    doc["switches"][0]["uplinks"] = {"eth1", "eth2", "eth3", "eth4"};
    doc["switches"][0]["teaming"] = {{"load_balancing", "explicit"},
                                     {"standby", {"eth4", "eth2"}},
                                     {"unused", {"eth3"}},
                                     {"failback", false}};
    NetworkConfig config = NetworkConfig::from_json(doc, "network.json");
    const VirtualSwitch& vswitch = config.switches[0];
    EXPECT_EQ(vswitch.active_uplinks(), std::vector<std::string>{"eth1"});
    EXPECT_EQ(vswitch.teamed_uplinks(), (std::vector<std::string>{"eth1", "eth4", "eth2"}));
    EXPECT_TRUE(vswitch.bonded());
    EXPECT_EQ(vswitch.team_interface(), "vSwitch0-team");
    EXPECT_FALSE(vswitch.teaming.failback);
    EXPECT_EQ(NetworkConfig::from_json(config.to_json(), "again").to_json(), config.to_json());

    // ESX's defaults: by originating port, failback; one uplink is no team.
    const VirtualSwitch plain = NetworkConfig::from_json(two_switches(), "n").switches[0];
    EXPECT_EQ(plain.teaming.load_balancing, NicTeaming::LoadBalancing::PortId);
    EXPECT_TRUE(plain.teaming.failback);
    EXPECT_FALSE(plain.bonded());
    // A long name's team keeps the first 10 characters.
    VirtualSwitch long_named;
    long_named.name = "switch-for-storage";
    EXPECT_EQ(long_named.team_interface(), "switch-for-team");
}

TEST(NicTeaming, RefusesWhatESXRefusesAndWhatIsNotBuilt) {
    auto teamed = [](json teaming) {
        json doc = two_switches();
        doc["switches"][0]["uplinks"] = {"eth1", "eth2"};
        doc["switches"][0]["teaming"] = teaming;
        return doc;
    };
    EXPECT_NE(refusal(teamed({{"standby", {"eth9"}}}))
                  .find("teaming: eth9 is not one of its uplinks (eth1, eth2)"),
              std::string::npos);
    EXPECT_NE(refusal(teamed({{"standby", {"eth2"}}, {"unused", {"eth2"}}}))
                  .find("uplink eth2 is listed twice"),
              std::string::npos);
    EXPECT_NE(refusal(teamed({{"load_balancing", "explicit"}, {"unused", {"eth1", "eth2"}}}))
                  .find("no active uplink"),
              std::string::npos);
    EXPECT_NE(refusal(teamed({{"load_balancing", "iphash"}, {"standby", {"eth2"}}}))
                  .find("IP hash spreads traffic over every active uplink"),
              std::string::npos);
    EXPECT_NE(
        refusal(teamed({{"load_balancing", "round-robin"}}))
            .find("load_balancing: 'round-robin' is not one of portid, mac, iphash, explicit"),
        std::string::npos);
    // By port or source MAC over two active uplinks: steered, no bond.
    for (const char* policy : {"portid", "mac"}) {
        NetworkConfig steered =
            NetworkConfig::from_json(teamed({{"load_balancing", policy}}), "network.json");
        EXPECT_TRUE(steered.switches[0].steered()) << policy;
        EXPECT_FALSE(steered.switches[0].bonded()) << policy;
    }
    // With one active uplink, every policy is a failover order.
    NetworkConfig config =
        NetworkConfig::from_json(teamed({{"standby", {"eth2"}}}), "network.json");
    EXPECT_TRUE(config.switches[0].bonded());
    EXPECT_FALSE(config.switches[0].steered());

    // Two names with the same first 10 characters would share a team interface.
    json iphash = {{"load_balancing", "iphash"}};
    json doc = {
        {"switches",
         {{{"name", "storage-net-a"}, {"uplinks", {"eth1", "eth2"}}, {"teaming", iphash}},
          {{"name", "storage-net-b"}, {"uplinks", {"eth3", "eth4"}}, {"teaming", iphash}}}}};
    EXPECT_NE(refusal(doc).find("its team interface storage-ne-team has the name of another"),
              std::string::npos);
}

TEST(NetworkConfig, NativeVlanIsTheLowestNoPortGroupUses) {
    NetworkConfig config = NetworkConfig::from_json(two_switches(), "network.json");
    EXPECT_EQ(config.native_vlan("vSwitch0"), 1);
    config.portgroups.push_back({"one", "vSwitch0", 1, std::nullopt, {}});
    config.portgroups.push_back({"two", "vSwitch0", 2, std::nullopt, {}});
    config.portgroups.push_back({"elsewhere", "vSwitch1", 3, std::nullopt, {}});
    EXPECT_EQ(config.native_vlan("vSwitch0"), 3);  // another switch's VLANs do not count
    EXPECT_EQ(config.native_vlan("vSwitch1"), 1);
}

TEST(NetworkConfig, RefusesASwitchWithNoVlanLeftForUntaggedFrames) {
    json doc = two_switches();
    doc["portgroups"] = json::array();
    for (int vlan = 1; vlan <= 4094; ++vlan) {
        doc["portgroups"].push_back(
            {{"name", "pg" + std::to_string(vlan)}, {"switch", "vSwitch0"}, {"vlan", vlan}});
    }
    EXPECT_NE(refusal(doc).find("one must stay free to carry its untagged frames"),
              std::string::npos);
}

TEST(NetworkConfig, ShapingIsOffByDefaultAndAPortGroupMayOverrideItsSwitch) {
    json doc = two_switches();
    doc["switches"][0]["shaping"] = {{"average_kbps", 8000}};
    doc["portgroups"][1]["shaping"] = {{"enabled", false}};
    NetworkConfig config = NetworkConfig::from_json(doc, "network.json");
    EXPECT_FALSE(config.switches[1].shaping.enabled);  // ESX's default
    TrafficShaping inherited = config.shaping_of(*config.find_portgroup("VM-Network"));
    EXPECT_TRUE(inherited.enabled);
    EXPECT_EQ(inherited.describe(), "average 8000 kbit/s, peak 100000 kbit/s, burst 102400 KiB");
    EXPECT_EQ(config.shaping_of(*config.find_portgroup("web")).describe(), "off");
    EXPECT_EQ(NetworkConfig::from_json(config.to_json(), "again").to_json(), config.to_json());

    doc["portgroups"][1]["shaping"] = {{"average_kbps", 8000}, {"peak_kbps", 4000}};
    EXPECT_NE(
        refusal(doc).find("portgroups[1].shaping.peak_kbps: 4000 is below the average (8000)"),
        std::string::npos);
    doc["portgroups"][1]["shaping"] = {{"burst_kib", 0}};
    EXPECT_NE(refusal(doc).find("portgroups[1].shaping.burst_kib: 0 is out of range"),
              std::string::npos);
}

TEST(PortVlans, FollowEachKindOfPortGroup) {
    NetworkConfig config = NetworkConfig::from_json(two_switches(), "network.json");
    config.portgroups.push_back({"native-taken", "vSwitch0", 1, std::nullopt, {}});
    // VLAN 0 rides the native VLAN, now 2 because a port group uses 1.
    PortVlans untagged = portgroup_port_vlans(config, *config.find_portgroup("VM-Network"));
    EXPECT_EQ(untagged.describe(), "2 untagged pvid");
    PortVlans web = portgroup_port_vlans(config, *config.find_portgroup("web"));
    EXPECT_EQ(web.describe(), "10 untagged pvid");
    PortVlans trunk = portgroup_port_vlans(config, *config.find_portgroup("trunk"));
    EXPECT_EQ(trunk.describe(), "1 untagged pvid, 2-4094 tagged");
    EXPECT_EQ(trunk.untagged_by_vid.size(), 4094u);
    PortVlans uplink = uplink_port_vlans(config, "vSwitch0");
    EXPECT_EQ(uplink.describe(), "1 tagged, 2 untagged pvid, 3-4094 tagged");
    EXPECT_EQ(PortVlans{}.describe(), "none");
}

}  // namespace
}  // namespace vireo
