#include "devices/virtio/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "base/byte_size.h"
#include "base/error.h"
#include "base/subprocess.h"
#include "base/unique_fd.h"
#include "devices/virtio/virtio_spec.h"
#include "driver_queue.h"
#include "net/interface_name.h"
#include "net/port_filter.h"
#include "net/tap.h"

// The vNIC against a real TAP interface: the host side of the wire is an
// AF_PACKET socket on that interface. Needs CAP_NET_ADMIN (the tests run as
// root); the TAP disappears with the device.
namespace vireo {
namespace {

using testing::Buf;
using testing::DriverQueue;

constexpr uint16_t kTestEtherType = 0x88b5;  // IEEE "local experimental"
constexpr MacAddress kGuestMac = {0x02, 0x76, 0x69, 0x00, 0x00, 0x01};
constexpr MacAddress kHostMac = {0x02, 0x76, 0x69, 0x00, 0x00, 0x02};
constexpr uint64_t kRxRing = 0x10000;
constexpr uint64_t kTxRing = 0x20000;
constexpr uint64_t kCtrlRing = 0x30000;
constexpr uint64_t kRx1Ring = 0x40000;  // the second queue pair's
constexpr uint64_t kTx1Ring = 0x50000;
constexpr uint64_t kRxBuffers = 0x100000;  // 64 KiB apart
constexpr uint64_t kTxFrames = 0x800000;
constexpr uint64_t kCtrlBuffers = 0xc00000;

constexpr uint64_t kEventIdxFeature = uint64_t{1} << virtio::kFeatureEventIdx;

uint64_t bit(int feature) {
    return uint64_t{1} << feature;
}

class CountingInterrupt : public VirtioInterrupt {
public:
    void signal_used(uint16_t queue) override {
        used.push_back(queue);
        if (on_used) {
            on_used(queue);
        }
    }
    void signal_config_change() override { ++config_changes; }
    std::vector<uint16_t> used;
    std::function<void(uint16_t queue)> on_used;  // what the driver would see then
    int config_changes = 0;
};

std::vector<uint8_t> ethernet_frame(const MacAddress& to, const MacAddress& from, size_t payload,
                                    uint8_t seed) {
    std::vector<uint8_t> frame(14 + payload);
    std::copy(to.begin(), to.end(), frame.begin());
    std::copy(from.begin(), from.end(), frame.begin() + 6);
    frame[12] = kTestEtherType >> 8;
    frame[13] = kTestEtherType & 0xff;
    for (size_t i = 14; i < frame.size(); ++i) {
        frame[i] = static_cast<uint8_t>(seed + i * 13);
    }
    return frame;
}

class VirtioNetTest : public ::testing::Test {
protected:
    void SetUp() override {
        tap_name = "vntest" + std::to_string(::getpid() % 100000);
        std::vector<std::unique_ptr<NetBackend>> wire;
        for (unsigned i = 0; i < queue_pairs(); ++i) {
            wire.push_back(std::make_unique<Tap>(tap_name, queue_pairs() > 1));
        }
        std::unique_ptr<PortFilter> filter;
        if (std::optional<SecurityPolicy> policy = security()) {
            filter = std::make_unique<PortFilter>(tap_name, kGuestMac, *policy);
        }
        net = std::make_unique<VirtioNet>(std::move(wire), kGuestMac, "virtio-net",
                                          std::move(filter));
        // No IPv6 chatter (router solicitations, MLD) on the wire under test.
        std::ofstream("/proc/sys/net/ipv6/conf/" + tap_name + "/disable_ipv6") << "1";
        UniqueFd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ifreq request{};
        std::strncpy(request.ifr_name, tap_name.c_str(), IFNAMSIZ - 1);
        request.ifr_mtu = 9000;
        ASSERT_EQ(::ioctl(control.get(), SIOCSIFMTU, &request), 0) << std::strerror(errno);
        ASSERT_EQ(::ioctl(control.get(), SIOCGIFFLAGS, &request), 0);
        request.ifr_flags |= IFF_UP;
        ASSERT_EQ(::ioctl(control.get(), SIOCSIFFLAGS, &request), 0) << std::strerror(errno);
        host = packet_socket(kTestEtherType);
        ASSERT_FALSE(HasFailure());
    }

    // The host's end of the TAP for frames of one ethertype, both ways.
    UniqueFd packet_socket(uint16_t ether_type) {
        UniqueFd socket(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ether_type)));
        EXPECT_TRUE(socket.valid()) << std::strerror(errno);
        sockaddr_ll address{};
        address.sll_family = AF_PACKET;
        address.sll_protocol = htons(ether_type);
        address.sll_ifindex = static_cast<int>(::if_nametoindex(tap_name.c_str()));
        EXPECT_EQ(::bind(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
            << std::strerror(errno);
        return socket;
    }

    // Queue pairs, each with a queue of the TAP; one by default.
    virtual unsigned queue_pairs() const { return 1; }
    // The port group's policy, on the TAP as vireo-vmm puts it; none by default.
    virtual std::optional<SecurityPolicy> security() const { return std::nullopt; }

    void activate(uint64_t features) {
        // The transport offers VIRTIO_F_EVENT_IDX for every device.
        features &= net->device_features() | kEventIdxFeature;
        negotiated = features;
        queues.emplace_back(memory, rx.config(), features);
        queues.emplace_back(memory, tx.config(), features);
        if (queue_pairs() > 1) {
            queues.emplace_back(memory, rx1.config(), features);
            queues.emplace_back(memory, tx1.config(), features);
        }
        queues.emplace_back(memory, ctrl.config(), features);
        net->activate(VirtioActivation{memory, features, queues, interrupt});
    }

    // The host puts a frame on the wire towards the guest.
    void host_sends(const std::vector<uint8_t>& frame) {
        ASSERT_EQ(::send(host.get(), frame.data(), frame.size(), 0),
                  static_cast<ssize_t>(frame.size()))
            << std::strerror(errno);
    }
    // The host sends a frame the TAP's rules drop: the send may fail (ENOBUFS).
    void host_sends_refused(const std::vector<uint8_t>& frame) {
        ssize_t sent = ::send(host.get(), frame.data(), frame.size(), 0);
        EXPECT_TRUE(sent == static_cast<ssize_t>(frame.size()) || errno == ENOBUFS)
            << std::strerror(errno);
    }
    // The next frame the host received, or empty after a second.
    std::vector<uint8_t> host_receives() {
        pollfd ready{host.get(), POLLIN, 0};
        if (::poll(&ready, 1, 1000) != 1) {
            return {};
        }
        std::vector<uint8_t> frame(65536);
        ssize_t n = ::recv(host.get(), frame.data(), frame.size(), 0);
        frame.resize(static_cast<size_t>(std::max<ssize_t>(n, 0)));
        return frame;
    }
    // Waits until the TAP holds a frame for the device, then lets it receive.
    void device_receives() {
        pollfd ready{net_fd(), POLLIN, 0};
        ASSERT_EQ(::poll(&ready, 1, 1000), 1) << "the frame never reached the TAP";
        net->process_queue(0);
    }
    // Whether a frame reaches the TAP within a fifth of a second.
    bool tap_gets_a_frame() {
        pollfd ready{net_fd(), POLLIN, 0};
        return ::poll(&ready, 1, 200) == 1;
    }
    uint64_t dropped_by_policy() { return net->filter()->dropped(); }
    int net_fd() { return net->worker_sources().at(0).fd; }

    void offer_rx_buffers(unsigned count, uint32_t size) {
        for (unsigned i = 0; i < count; ++i) {
            rx.make_available(
                rx.add_chain({{kRxBuffers + 0x10000 * uint64_t{next_rx_++}, size, true}}));
        }
    }
    std::vector<uint8_t> guest_bytes(uint64_t address, uint64_t length) {
        std::vector<uint8_t> bytes(length);
        EXPECT_TRUE(memory.read(address, bytes.data(), length));
        return bytes;
    }
    // The guest sends `frame` with a zero virtio-net header on a queue pair's
    // transmit queue.
    void guest_sends(const std::vector<uint8_t>& frame, unsigned pair = 0) {
        virtio::NetHeader header{};
        EXPECT_TRUE(memory.write_object(kTxFrames, header));
        EXPECT_TRUE(memory.write(kTxFrames + 0x1000, frame.data(), frame.size()));
        DriverQueue& queue = pair == 0 ? tx : tx1;
        queue.make_available(
            queue.add_chain({{kTxFrames, sizeof(header)},
                             {kTxFrames + 0x1000, static_cast<uint32_t>(frame.size())}}));
        net->process_queue(static_cast<uint16_t>(2 * pair + 1));
    }
    // A control command; returns the ack the device wrote.
    uint8_t command(uint8_t command_class, uint8_t command_id, const std::vector<uint8_t>& data) {
        std::vector<uint8_t> bytes{command_class, command_id};
        bytes.insert(bytes.end(), data.begin(), data.end());
        EXPECT_TRUE(memory.write(kCtrlBuffers, bytes.data(), bytes.size()));
        EXPECT_TRUE(memory.write_object(kCtrlBuffers + 0x1000, uint8_t{0xee}));
        ctrl.make_available(ctrl.add_chain({{kCtrlBuffers, static_cast<uint32_t>(bytes.size())},
                                            {kCtrlBuffers + 0x1000, 1, true}}));
        net->process_queue(static_cast<uint16_t>(net->queue_count() - 1));
        return memory.read_object<uint8_t>(kCtrlBuffers + 0x1000).value();
    }

    std::string tap_name;
    std::unique_ptr<VirtioNet> net;
    UniqueFd host;
    GuestMemory memory = GuestMemory::create({{0, 16 * MiB}});
    DriverQueue rx{memory, 64, kRxRing};
    DriverQueue tx{memory, 64, kTxRing};
    DriverQueue ctrl{memory, 64, kCtrlRing};
    DriverQueue rx1{memory, 64, kRx1Ring};
    DriverQueue tx1{memory, 64, kTx1Ring};
    std::vector<Virtqueue> queues;
    CountingInterrupt interrupt;
    uint64_t negotiated = 0;
    unsigned next_rx_ = 0;
};

constexpr uint64_t kMergeable = uint64_t{1} << virtio::kNetFeatureMrgRxbuf;
constexpr uint64_t kControl = uint64_t{1} << virtio::kNetFeatureCtrlVq |
                              uint64_t{1} << virtio::kNetFeatureCtrlRx |
                              uint64_t{1} << virtio::kNetFeatureCtrlMacAddr;

TEST_F(VirtioNetTest, ConfigurationCarriesTheMacAndAnUpLink) {
    activate(kMergeable);
    virtio::NetConfig config{};
    net->config_read(0, {reinterpret_cast<uint8_t*>(&config), sizeof(config)});
    EXPECT_EQ(config.mac, kGuestMac);
    EXPECT_EQ(config.status, virtio::kNetStatusLinkUp);
    EXPECT_EQ(config.max_virtqueue_pairs, 1);
    EXPECT_TRUE(net->device_features() & bit(virtio::kNetFeatureMac));
}

TEST_F(VirtioNetTest, AnAnnouncementIsABroadcastRarpFromTheMacEvenBeforeTheDriver) {
    UniqueFd rarp = packet_socket(0x8035);
    ASSERT_FALSE(HasFailure());

    net->announce();  // no driver yet: the switches still learn where the MAC is
    EXPECT_EQ(net->announcements(), 1u);
    pollfd ready{rarp.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&ready, 1, 1000), 1) << "no RARP reached the host";
    std::array<uint8_t, 128> frame{};
    ASSERT_EQ(::recv(rarp.get(), frame.data(), frame.size(), 0), 60);
    auto bytes = [&](size_t at, size_t length) {
        return std::vector<uint8_t>(frame.begin() + static_cast<ptrdiff_t>(at),
                                    frame.begin() + static_cast<ptrdiff_t>(at + length));
    };
    std::vector<uint8_t> mac(kGuestMac.begin(), kGuestMac.end());
    EXPECT_EQ(bytes(0, 6), std::vector<uint8_t>(6, 0xff)) << "broadcast";
    EXPECT_EQ(bytes(6, 6), mac) << "from the vNIC's MAC";
    // RARP (RFC 903): Ethernet, IPv4, address lengths 6 and 4, a reverse
    // request, the MAC as sender and target hardware address.
    EXPECT_EQ(bytes(12, 10), (std::vector<uint8_t>{0x80, 0x35, 0, 1, 8, 0, 6, 4, 0, 3}));
    EXPECT_EQ(bytes(22, 6), mac);
    EXPECT_EQ(bytes(32, 6), mac);

    net->set_link(false);  // nothing leaves an unplugged cable
    net->announce();
    EXPECT_EQ(net->announcements(), 1u);
    EXPECT_EQ(::poll(&ready, 1, 200), 0);
}

TEST_F(VirtioNetTest, AnUnpluggedLinkCarriesNothingAndTheDriverHearsOfIt) {
    activate(kMergeable);
    offer_rx_buffers(2, 2048);
    net->set_link(false);
    net->set_link(false);  // no change: no second interrupt
    // The worker tells the driver: a configuration change, status down.
    DeviceWorker::Source link_source = net->worker_sources().at(1);
    pollfd ready{link_source.fd, POLLIN, 0};
    ASSERT_EQ(::poll(&ready, 1, 1000), 1);
    link_source.on_readable();
    EXPECT_EQ(interrupt.config_changes, 1);
    virtio::NetConfig config{};
    net->config_read(0, {reinterpret_cast<uint8_t*>(&config), sizeof(config)});
    EXPECT_EQ(config.status, 0);

    guest_sends(ethernet_frame(kHostMac, kGuestMac, 100, 1));
    EXPECT_EQ(tx.used_idx(), 1);  // the chain comes back, the frame goes nowhere
    EXPECT_EQ(net->counters().tx_dropped, 1u);
    EXPECT_TRUE(host_receives().empty());
    host_sends(ethernet_frame(kGuestMac, kHostMac, 100, 2));
    device_receives();
    EXPECT_EQ(rx.used_idx(), 0);
    EXPECT_EQ(net->counters().rx_dropped, 1u);

    // Plugged back: frames flow both ways again.
    net->set_link(true);
    net->config_read(0, {reinterpret_cast<uint8_t*>(&config), sizeof(config)});
    EXPECT_EQ(config.status, virtio::kNetStatusLinkUp);
    auto frame = ethernet_frame(kHostMac, kGuestMac, 100, 3);
    guest_sends(frame);
    EXPECT_EQ(host_receives(), frame);
    host_sends(ethernet_frame(kGuestMac, kHostMac, 100, 4));
    device_receives();
    EXPECT_EQ(rx.used_idx(), 1);
}

TEST_F(VirtioNetTest, AGuestFrameReachesTheHostInterfaceWhole) {
    activate(kMergeable);
    auto frame = ethernet_frame(kHostMac, kGuestMac, 1000, 1);
    guest_sends(frame);
    EXPECT_EQ(tx.used_idx(), 1);
    EXPECT_EQ(host_receives(), frame);
    EXPECT_EQ(net->counters().tx_packets, 1u);
    EXPECT_EQ(net->counters().tx_bytes, frame.size());
    EXPECT_EQ(interrupt.used, std::vector<uint16_t>{1});
}

// A driver that refills only on the interrupt it asked for (Linux's
// transmit path: used_event at 3/4 of what is in flight) must get it when
// the device passes that entry, not after the rest of a batch of system calls.
TEST_F(VirtioNetTest, ALongTransmitBatchInterruptsAtTheEntryTheDriverAskedFor) {
    activate(kMergeable | kEventIdxFeature);
    constexpr uint64_t kFrames = 8;
    auto frame = ethernet_frame(kHostMac, kGuestMac, 60, 7);
    ASSERT_TRUE(memory.write_object(kTxFrames, virtio::NetHeader{}));
    ASSERT_TRUE(memory.write(kTxFrames + 0x1000, frame.data(), frame.size()));
    for (uint64_t i = 0; i < kFrames; ++i) {
        tx.make_available(
            tx.add_chain({{kTxFrames, sizeof(virtio::NetHeader)},
                          {kTxFrames + 0x1000, static_cast<uint32_t>(frame.size())}}));
    }
    tx.set_used_event(2);  // "once you have used entry 2"
    std::vector<uint16_t> used_when_signalled;
    interrupt.on_used = [&](uint16_t) { used_when_signalled.push_back(tx.used_idx()); };
    net->process_queue(1);
    EXPECT_EQ(tx.used_idx(), kFrames);
    EXPECT_EQ(used_when_signalled, std::vector<uint16_t>{3});
    for (uint64_t i = 0; i < kFrames; ++i) {
        EXPECT_EQ(host_receives(), frame) << "frame " << i;
    }
}

// Without VIRTIO_F_EVENT_IDX only a flag says whether the driver wants
// interrupts: a batch ends in one, not one per frame.
TEST_F(VirtioNetTest, WithoutEventIdxATransmitBatchInterruptsOnceAtItsEnd) {
    activate(kMergeable);
    auto frame = ethernet_frame(kHostMac, kGuestMac, 60, 8);
    ASSERT_TRUE(memory.write_object(kTxFrames, virtio::NetHeader{}));
    ASSERT_TRUE(memory.write(kTxFrames + 0x1000, frame.data(), frame.size()));
    for (int i = 0; i < 4; ++i) {
        tx.make_available(
            tx.add_chain({{kTxFrames, sizeof(virtio::NetHeader)},
                          {kTxFrames + 0x1000, static_cast<uint32_t>(frame.size())}}));
    }
    std::vector<uint16_t> used_when_signalled;
    interrupt.on_used = [&](uint16_t) { used_when_signalled.push_back(tx.used_idx()); };
    net->process_queue(1);
    EXPECT_EQ(used_when_signalled, std::vector<uint16_t>{4});
}

// The receive side likewise: a driver that re-armed its interrupt at the
// next entry (NAPI done) hears of the first frame, not of the last.
TEST_F(VirtioNetTest, ALongReceiveBatchInterruptsAtTheEntryTheDriverAskedFor) {
    activate(kMergeable | kEventIdxFeature);
    offer_rx_buffers(6, 1536);
    rx.set_used_event(0);
    for (uint8_t i = 0; i < 6; ++i) {
        host_sends(ethernet_frame(kGuestMac, kHostMac, 100, i));
    }
    std::vector<uint16_t> used_when_signalled;
    interrupt.on_used = [&](uint16_t) { used_when_signalled.push_back(rx.used_idx()); };
    device_receives();
    EXPECT_EQ(rx.used_idx(), 6);
    EXPECT_EQ(used_when_signalled, std::vector<uint16_t>{1});
}

TEST_F(VirtioNetTest, AMalformedGuestFrameIsDroppedAndItsChainReturned) {
    activate(kMergeable);
    // Shorter than a header and an Ethernet header.
    EXPECT_TRUE(memory.write_object(kTxFrames, uint64_t{0}));
    tx.make_available(tx.add_chain({{kTxFrames, 8}}));
    net->process_queue(1);
    EXPECT_EQ(tx.used_idx(), 1);
    EXPECT_EQ(net->counters().tx_dropped, 1u);
    EXPECT_EQ(net->counters().tx_packets, 0u);
}

TEST_F(VirtioNetTest, ALargeFrameSpreadsOverMergeableBuffersCountedInTheHeader) {
    activate(kMergeable);
    offer_rx_buffers(4, 1536);
    auto frame = ethernet_frame(kGuestMac, kHostMac, 3000, 2);
    host_sends(frame);
    device_receives();
    ASSERT_EQ(rx.used_idx(), 2) << "12 + 3014 bytes take two 1536-byte buffers";
    EXPECT_EQ(rx.used(0).len, 1536u);
    EXPECT_EQ(rx.used(1).len, 12u + frame.size() - 1536u);
    auto first = guest_bytes(kRxBuffers, 1536);
    auto second = guest_bytes(kRxBuffers + 0x10000, rx.used(1).len);
    virtio::NetHeader header;
    std::memcpy(&header, first.data(), sizeof(header));
    EXPECT_EQ(header.num_buffers, 2);
    std::vector<uint8_t> received(first.begin() + 12, first.end());
    received.insert(received.end(), second.begin(), second.end());
    EXPECT_EQ(received, frame);
    EXPECT_EQ(net->counters().rx_packets, 1u);
}

TEST_F(VirtioNetTest, WithoutMergeableBuffersAFrameTooLargeForItsBufferIsDropped) {
    activate(0);
    offer_rx_buffers(1, 1000);
    offer_rx_buffers(1, 4096);
    host_sends(ethernet_frame(kGuestMac, kHostMac, 2000, 3));
    auto small = ethernet_frame(kGuestMac, kHostMac, 500, 4);
    host_sends(small);
    device_receives();
    ASSERT_EQ(rx.used_idx(), 2);
    EXPECT_EQ(rx.used(0).len, 0u) << "the 1000-byte buffer comes back empty";
    EXPECT_EQ(rx.used(1).len, 12u + small.size());
    auto bytes = guest_bytes(kRxBuffers + 0x10000 + 12, small.size());
    EXPECT_EQ(bytes, small);
    EXPECT_EQ(net->counters().rx_dropped, 1u);
}

TEST_F(VirtioNetTest, AFrameWaitsForReceiveBuffersAndGoesWhenTheGuestAddsThem) {
    activate(kMergeable);
    auto frame = ethernet_frame(kGuestMac, kHostMac, 100, 5);
    host_sends(frame);
    device_receives();
    EXPECT_EQ(rx.used_idx(), 0);
    offer_rx_buffers(1, 1536);
    net->process_queue(0);  // the guest's notification after adding buffers
    ASSERT_EQ(rx.used_idx(), 1);
    EXPECT_EQ(guest_bytes(kRxBuffers + 12, frame.size()), frame);
}

TEST_F(VirtioNetTest, TheReceiveFilterFollowsTheControlQueue) {
    activate(kMergeable | kControl);
    offer_rx_buffers(8, 1536);
    constexpr MacAddress kOther = {0x02, 0x76, 0x69, 0x00, 0x00, 0x99};
    constexpr MacAddress kTable = {0x02, 0x76, 0x69, 0x00, 0x00, 0x77};
    EXPECT_EQ(command(virtio::kNetCtrlRx, virtio::kNetCtrlRxPromisc, {0}), virtio::kNetOk);
    EXPECT_EQ(command(virtio::kNetCtrlRx, virtio::kNetCtrlRxAllmulti, {0}), virtio::kNetOk);
    // One unicast entry, no multicast ones.
    std::vector<uint8_t> table{1, 0, 0, 0};
    table.insert(table.end(), kTable.begin(), kTable.end());
    table.insert(table.end(), {0, 0, 0, 0});
    EXPECT_EQ(command(virtio::kNetCtrlMac, virtio::kNetCtrlMacTableSet, table), virtio::kNetOk);

    host_sends(ethernet_frame(kOther, kHostMac, 60, 6));                    // someone else's
    host_sends(ethernet_frame({0x01, 0, 0x5e, 0, 0, 1}, kHostMac, 60, 7));  // multicast
    auto mine = ethernet_frame(kGuestMac, kHostMac, 60, 8);
    auto broadcast = ethernet_frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kHostMac, 60, 9);
    auto listed = ethernet_frame(kTable, kHostMac, 60, 10);
    host_sends(mine);
    host_sends(broadcast);
    host_sends(listed);
    device_receives();
    ASSERT_EQ(rx.used_idx(), 3);
    EXPECT_EQ(guest_bytes(kRxBuffers + 12, mine.size()), mine);
    EXPECT_EQ(guest_bytes(kRxBuffers + 0x10000 + 12, broadcast.size()), broadcast);
    EXPECT_EQ(guest_bytes(kRxBuffers + 0x20000 + 12, listed.size()), listed);

    // Promiscuous again: everything.
    EXPECT_EQ(command(virtio::kNetCtrlRx, virtio::kNetCtrlRxPromisc, {1}), virtio::kNetOk);
    host_sends(ethernet_frame(kOther, kHostMac, 60, 11));
    device_receives();
    EXPECT_EQ(rx.used_idx(), 4);
}

TEST_F(VirtioNetTest, TheGuestChangesItsMacThroughTheControlQueue) {
    activate(kMergeable | kControl);
    constexpr MacAddress kNew = {0x02, 0x76, 0x69, 0x00, 0x00, 0x42};
    EXPECT_EQ(command(virtio::kNetCtrlMac, virtio::kNetCtrlMacAddrSet,
                      std::vector<uint8_t>(kNew.begin(), kNew.end())),
              virtio::kNetOk);
    EXPECT_EQ(net->mac(), kNew);
    virtio::NetConfig config{};
    net->config_read(0, {reinterpret_cast<uint8_t*>(&config), sizeof(config)});
    EXPECT_EQ(config.mac, kNew);
}

TEST_F(VirtioNetTest, MalformedControlCommandsAreRefusedWithoutEffect) {
    activate(kMergeable | kControl);
    EXPECT_EQ(command(virtio::kNetCtrlRx, virtio::kNetCtrlRxPromisc, {}), virtio::kNetErr);
    EXPECT_EQ(command(virtio::kNetCtrlRx, 7, {1}), virtio::kNetErr);
    EXPECT_EQ(command(9, 0, {}), virtio::kNetErr);
    EXPECT_EQ(command(virtio::kNetCtrlMac, virtio::kNetCtrlMacAddrSet, {1, 2, 3}), virtio::kNetErr);
    // A table whose count runs past its bytes, and one with bytes left over.
    EXPECT_EQ(command(virtio::kNetCtrlMac, virtio::kNetCtrlMacTableSet, {200, 0, 0, 0}),
              virtio::kNetErr);
    EXPECT_EQ(
        command(virtio::kNetCtrlMac, virtio::kNetCtrlMacTableSet, {0, 0, 0, 0, 0, 0, 0, 0, 1}),
        virtio::kNetErr);
    EXPECT_EQ(net->mac(), kGuestMac);
}

// ESX's defaults: promiscuous reject, MAC changes accept, forged transmits accept.
class VirtioNetDefaultPolicyTest : public VirtioNetTest {
    std::optional<SecurityPolicy> security() const override { return SecurityPolicy{}; }
};

TEST_F(VirtioNetDefaultPolicyTest, APromiscuousGuestStillGetsOnlyItsOwnUnicast) {
    activate(kMergeable | kControl);
    offer_rx_buffers(8, 1536);
    EXPECT_EQ(command(virtio::kNetCtrlRx, virtio::kNetCtrlRxPromisc, {1}), virtio::kNetOk);
    constexpr MacAddress kOther = {0x02, 0x76, 0x69, 0x00, 0x00, 0x99};
    host_sends_refused(ethernet_frame(kOther, kHostMac, 60, 20));
    auto broadcast = ethernet_frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kHostMac, 60, 21);
    host_sends(broadcast);
    auto mine = ethernet_frame(kGuestMac, kHostMac, 60, 22);
    host_sends(mine);
    device_receives();
    ASSERT_EQ(rx.used_idx(), 2);
    EXPECT_EQ(guest_bytes(kRxBuffers + 12, broadcast.size()), broadcast);
    EXPECT_EQ(guest_bytes(kRxBuffers + 0x10000 + 12, mine.size()), mine);
    EXPECT_EQ(dropped_by_policy(), 1u);

    // MAC changes accepted: the new address is the one that receives, and
    // the one it may send from.
    constexpr MacAddress kNew = {0x02, 0x76, 0x69, 0x00, 0x00, 0x42};
    EXPECT_EQ(command(virtio::kNetCtrlMac, virtio::kNetCtrlMacAddrSet,
                      std::vector<uint8_t>(kNew.begin(), kNew.end())),
              virtio::kNetOk);
    auto to_new = ethernet_frame(kNew, kHostMac, 60, 23);
    host_sends(to_new);
    device_receives();
    ASSERT_EQ(rx.used_idx(), 3);
    EXPECT_EQ(guest_bytes(kRxBuffers + 0x20000 + 12, to_new.size()), to_new);
    auto forged = ethernet_frame(kHostMac, kOther, 100, 24);
    guest_sends(forged);
    EXPECT_EQ(host_receives(), forged) << "forged transmits are accepted by default";
}

class VirtioNetStrictPolicyTest : public VirtioNetTest {
    std::optional<SecurityPolicy> security() const override {
        return SecurityPolicy{
            .promiscuous = false, .mac_changes = false, .forged_transmits = false};
    }
};

TEST_F(VirtioNetStrictPolicyTest, ForgedTransmitsAreDroppedAndItsOwnSourceGoes) {
    activate(kMergeable);
    constexpr MacAddress kOther = {0x02, 0x76, 0x69, 0x00, 0x00, 0x99};
    guest_sends(ethernet_frame(kHostMac, kOther, 100, 30));
    auto honest = ethernet_frame(kHostMac, kGuestMac, 100, 31);
    guest_sends(honest);
    EXPECT_EQ(host_receives(), honest) << "the forged frame must not come first";
    EXPECT_EQ(tx.used_idx(), 2);
    EXPECT_EQ(dropped_by_policy(), 1u) << "the TAP's rules drop it, not the device";
}

TEST_F(VirtioNetStrictPolicyTest, AGuestThatChangedItsMacReceivesNothing) {
    activate(kMergeable | kControl);
    offer_rx_buffers(8, 1536);
    constexpr MacAddress kNew = {0x02, 0x76, 0x69, 0x00, 0x00, 0x42};
    EXPECT_EQ(command(virtio::kNetCtrlMac, virtio::kNetCtrlMacAddrSet,
                      std::vector<uint8_t>(kNew.begin(), kNew.end())),
              virtio::kNetOk);
    host_sends_refused(ethernet_frame(kNew, kHostMac, 60, 40));
    host_sends_refused(ethernet_frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kHostMac, 60, 41));
    EXPECT_FALSE(tap_gets_a_frame());
    EXPECT_EQ(dropped_by_policy(), 2u);
    // The port group's policy changes to accept MAC changes (vireo portgroup
    // set): the running vNIC's rules follow at once.
    ASSERT_TRUE(PortFilter::apply_policy(tap_name, SecurityPolicy{.mac_changes = true}));
    host_sends(ethernet_frame(kNew, kHostMac, 60, 43));
    device_receives();
    ASSERT_EQ(rx.used_idx(), 1);
    ASSERT_TRUE(PortFilter::apply_policy(tap_name, SecurityPolicy{.mac_changes = false}));
    // Back to its own address: frames arrive again.
    EXPECT_EQ(command(virtio::kNetCtrlMac, virtio::kNetCtrlMacAddrSet,
                      std::vector<uint8_t>(kGuestMac.begin(), kGuestMac.end())),
              virtio::kNetOk);
    auto mine = ethernet_frame(kGuestMac, kHostMac, 60, 42);
    host_sends(mine);
    device_receives();
    ASSERT_EQ(rx.used_idx(), 2);
    EXPECT_EQ(guest_bytes(kRxBuffers + 0x10000 + 12, mine.size()), mine);
    EXPECT_FALSE(PortFilter::apply_policy("vnnosuch0", SecurityPolicy{}));
}

class VirtioNetPromiscuousPolicyTest : public VirtioNetTest {
    std::optional<SecurityPolicy> security() const override {
        return SecurityPolicy{.promiscuous = true};
    }
};

TEST_F(VirtioNetPromiscuousPolicyTest, APromiscuousGuestGetsOthersUnicast) {
    activate(kMergeable | kControl);
    offer_rx_buffers(8, 1536);
    EXPECT_EQ(command(virtio::kNetCtrlRx, virtio::kNetCtrlRxPromisc, {1}), virtio::kNetOk);
    constexpr MacAddress kOther = {0x02, 0x76, 0x69, 0x00, 0x00, 0x99};
    auto theirs = ethernet_frame(kOther, kHostMac, 60, 50);
    host_sends(theirs);
    device_receives();
    ASSERT_EQ(rx.used_idx(), 1);
    EXPECT_EQ(guest_bytes(kRxBuffers + 12, theirs.size()), theirs);
    // The guest's own filter still decides what it asked for.
    EXPECT_EQ(command(virtio::kNetCtrlRx, virtio::kNetCtrlRxPromisc, {0}), virtio::kNetOk);
    host_sends(ethernet_frame(kOther, kHostMac, 60, 51));
    host_sends(ethernet_frame(kGuestMac, kHostMac, 60, 52));
    device_receives();
    EXPECT_EQ(rx.used_idx(), 2);
    EXPECT_EQ(dropped_by_policy(), 0u);
}

class VirtioNetMultiqueueTest : public VirtioNetTest {
    unsigned queue_pairs() const override { return 2; }
};

TEST_F(VirtioNetMultiqueueTest, TheDriverChoosesThePairsInUseAndTheTapFollows) {
    constexpr uint64_t kMultiqueue = uint64_t{1} << virtio::kNetFeatureMq;
    EXPECT_EQ(net->queue_count(), 5);
    EXPECT_NE(net->device_features() & kMultiqueue, 0u);
    virtio::NetConfig config{};
    net->config_read(0, {reinterpret_cast<uint8_t*>(&config), sizeof(config)});
    EXPECT_EQ(config.max_virtqueue_pairs, 2);
    activate(kMergeable | kControl | kMultiqueue);
    EXPECT_EQ(net->queue_pairs_in_use(), 1u) << "one pair until the driver asks for more";

    // With one pair in use, the TAP steers every frame to that pair's queue.
    offer_rx_buffers(8, 1536);
    for (uint8_t seed = 0; seed < 4; ++seed) {
        host_sends(ethernet_frame(kGuestMac, kHostMac, 60, seed));
    }
    device_receives();
    EXPECT_EQ(rx.used_idx(), 4);

    EXPECT_EQ(command(virtio::kNetCtrlMq, virtio::kNetCtrlMqVqPairsSet, {2, 0}), virtio::kNetOk);
    EXPECT_EQ(net->queue_pairs_in_use(), 2u);
    EXPECT_EQ(command(virtio::kNetCtrlMq, virtio::kNetCtrlMqVqPairsSet, {3, 0}), virtio::kNetErr);
    EXPECT_EQ(command(virtio::kNetCtrlMq, virtio::kNetCtrlMqVqPairsSet, {0, 0}), virtio::kNetErr);
    EXPECT_EQ(command(virtio::kNetCtrlMq, virtio::kNetCtrlMqVqPairsSet, {1}), virtio::kNetErr);
    EXPECT_EQ(net->queue_pairs_in_use(), 2u) << "a refused command changes nothing";

    // The second pair's transmit queue reaches the wire too.
    auto frame = ethernet_frame(kHostMac, kGuestMac, 200, 7);
    guest_sends(frame, 1);
    EXPECT_EQ(host_receives(), frame);
    EXPECT_EQ(tx1.used_idx(), 1);
}

TEST(Tap, ANameThatCannotNameAnInterfaceIsRefusedBeforeAnythingIsCreated) {
    EXPECT_TRUE(interface_name_problem("a-name-far-too-long").has_value());
    EXPECT_TRUE(interface_name_problem("").has_value());
    EXPECT_TRUE(interface_name_problem("../x").has_value());
    EXPECT_FALSE(interface_name_problem("vnet0").has_value());
    EXPECT_THROW(Tap("bad/name"), Error);
}

TEST(Tap, AMultiQueueTapTakesAQueuePerAttachAndNoSingleQueueOne) {
    std::string name = "vnmq" + std::to_string(::getpid() % 100000);
    Tap first(name, true);
    Tap adopted(UniqueFd(::dup(first.fd())), name);  // as vireo-vmm takes its launcher's
    Tap second(name, true);
    EXPECT_NE(second.fd(), first.fd());
    EXPECT_THROW(Tap(name, false), Error);
    second.set_enabled(false);
    second.set_enabled(false);  // already so: no error
    second.set_enabled(true);
}

TEST(Tap, TakesOverTheFdOfTheTapItsLauncherMadeAndNoOther) {
    std::string name = "vnadopt" + std::to_string(::getpid() % 100000);
    Tap made(name);
    Tap adopted(UniqueFd(::dup(made.fd())), name);
    EXPECT_EQ(adopted.name(), name);
    EXPECT_NE(::fcntl(adopted.fd(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_THROW(Tap(UniqueFd(::dup(made.fd())), "vnother0"), Error);
    EXPECT_THROW(Tap(UniqueFd(::open("/dev/null", O_RDWR)), name), Error);
}

bool nft_table_exists(const std::string& table) {
    return run_process({"nft", "list", "table", "netdev", table}).status == 0;
}

TEST(PortFilter, ItsTableLivesWithItAndOneATapOutlivedIsRemovedAsStale) {
    std::string name = "vnfilt" + std::to_string(::getpid() % 100000);
    auto tap = std::make_unique<Tap>(name);
    {
        PortFilter filter(name, kGuestMac, SecurityPolicy{});
        EXPECT_EQ(filter.table(), "vireo-port-" + name);
        EXPECT_TRUE(nft_table_exists(filter.table()));
        EXPECT_EQ(filter.dropped(), 0u);
    }
    EXPECT_FALSE(nft_table_exists("vireo-port-" + name)) << "the filter removes its table";

    auto filter = std::make_unique<PortFilter>(name, kGuestMac, SecurityPolicy{});
    EXPECT_GE(PortFilter::remove_stale(), 0u);
    EXPECT_TRUE(nft_table_exists(filter->table())) << "the TAP is still there";
    tap.reset();  // the interface goes, as with a VMM killed
    EXPECT_GE(PortFilter::remove_stale(), 1u);
    EXPECT_FALSE(nft_table_exists(filter->table()));
    filter.reset();  // finds nothing left to remove, and says nothing
}

TEST(PortFilter, RefusesATapNameNftablesCannotName) {
    EXPECT_THROW(PortFilter("no+such", kGuestMac, SecurityPolicy{}), Error);
}

}  // namespace
}  // namespace vireo
