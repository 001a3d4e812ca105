#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "base/rate_limited_log.h"
#include "devices/virtio/guest_buffers.h"
#include "devices/virtio/virtio_device.h"
#include "net/mac_address.h"
#include "net/net_backend.h"
#include "net/port_filter.h"
#include "net/vhost_net.h"

// The network device's part of the virtio 1.x specification (5.1), little
// endian like the rest of virtio_spec.h.
namespace vireo::virtio {

// Feature bits (5.1.3).
inline constexpr int kNetFeatureCsum = 0;
inline constexpr int kNetFeatureGuestCsum = 1;
inline constexpr int kNetFeatureMac = 5;
inline constexpr int kNetFeatureGuestTso4 = 7;
inline constexpr int kNetFeatureGuestTso6 = 8;
inline constexpr int kNetFeatureGuestEcn = 9;
inline constexpr int kNetFeatureHostTso4 = 11;
inline constexpr int kNetFeatureHostTso6 = 12;
inline constexpr int kNetFeatureHostEcn = 13;
inline constexpr int kNetFeatureMrgRxbuf = 15;
inline constexpr int kNetFeatureStatus = 16;
inline constexpr int kNetFeatureCtrlVq = 17;
inline constexpr int kNetFeatureCtrlRx = 18;
inline constexpr int kNetFeatureMq = 22;
inline constexpr int kNetFeatureCtrlMacAddr = 23;

inline constexpr uint16_t kNetStatusLinkUp = 1;

// The control queue (5.1.6.5): class, command, data; the device writes an ack.
inline constexpr uint8_t kNetCtrlRx = 0;
inline constexpr uint8_t kNetCtrlRxPromisc = 0;
inline constexpr uint8_t kNetCtrlRxAllmulti = 1;
inline constexpr uint8_t kNetCtrlMac = 1;
inline constexpr uint8_t kNetCtrlMacTableSet = 0;
inline constexpr uint8_t kNetCtrlMacAddrSet = 1;
inline constexpr uint8_t kNetCtrlMq = 4;
inline constexpr uint8_t kNetCtrlMqVqPairsSet = 0;
inline constexpr uint8_t kNetOk = 0;
inline constexpr uint8_t kNetErr = 1;

// struct virtio_net_hdr_v1: in front of every frame both ways.
struct NetHeader {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;  // receive buffers one frame took (mergeable buffers)
};
static_assert(sizeof(NetHeader) == 12 && offsetof(NetHeader, num_buffers) == 10);

// struct virtio_net_config up to mtu. Fields of features not offered read 0.
struct NetConfig {
    std::array<uint8_t, 6> mac;
    uint16_t status;
    uint16_t max_virtqueue_pairs;
    uint16_t mtu;
};
static_assert(sizeof(NetConfig) == 12 && offsetof(NetConfig, status) == 6 &&
              offsetof(NetConfig, max_virtqueue_pairs) == 8 && offsetof(NetConfig, mtu) == 10);

}  // namespace vireo::virtio

namespace vireo {

// virtio-net (virtio 1.x 5.1): a vNIC whose wire is a NetBackend (a TAP), served in
// userspace on the device's worker thread (the path for hosts without
// vhost-net), or by the host kernel's vhost-net. Queues: a receive and a
// transmit queue per queue pair (2i, 2i+1), then the control queue. With
// several pairs (multiqueue, MQ), each has its own queue of the TAP; the
// driver chooses how many it uses (the control queue's MQ command), and
// the TAP spreads received flows over those only.
//
// Transmit: each chain's readable bytes (header, frame) go to the TAP in one
// writev, straight from guest RAM; the host kernel checks the header. Receive:
// a frame is read from the TAP into a host buffer and copied into as many of
// the guest's chains as it needs (mergeable receive buffers), or into one
// (when the driver did not take them; a frame too large for it is dropped).
// With no receive buffer left the frame waits in the device and the TAP's
// own queue; the guest's next receive notification resumes.
//
// Offered: MAC, STATUS (the link, which set_link takes down and up as
// unplugging a cable does: no frame either way while down), MRG_RXBUF,
// checksum and TSO offloads both ways (passed to the TAP as the guest
// accepts them), and the control queue with RX (promiscuous, all-multicast)
// and MAC (filter table, address change), and MQ with several pairs. Until
// the driver says otherwise,
// the device is promiscuous, as QEMU's; then it delivers only frames for
// its MAC or filter table, broadcast, and multicast as asked. A chain the
// guest got wrong is returned unused and counted; nothing it does throws.
class VirtioNet final : public VirtioDevice {
public:
    static constexpr uint16_t kQueueSize = 256;
    // The largest frame either way: a 64 KiB TSO frame with its Ethernet and
    // VLAN headers, after the virtio-net header.
    static constexpr size_t kMaxFrameBytes = NetBackend::kHeaderBytes + 65536 + 18;
    // Entries of the control queue's MAC filter table (unicast + multicast);
    // more puts the device in promiscuous mode for that kind, as QEMU does.
    static constexpr size_t kMacTableEntries = 64;
    static constexpr size_t kMaxQueuePairs = 16;

    struct Counters {
        std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, rx_dropped{0};
        std::atomic<uint64_t> tx_packets{0}, tx_bytes{0}, tx_dropped{0};
    };

    // `label` names the vNIC in log lines. `filter`: the port group's
    // security policy on the TAP, told each MAC the guest takes (none for a
    // vNIC whose policy accepts everything, or on a TAP the host wires
    // itself). `vhost`: hand the receive and transmit queues to the host
    // kernel's vhost-net when it is there; frames then move without the VMM,
    // and the device's frame counters stay still.
    // `wire`: one backend per queue pair (the TAP's queues), at most
    // kMaxQueuePairs.
    // `follow_mac`: told each MAC the guest takes when someone else keeps
    // the port's policy (vireod, for a jailed VMM); it throws to refuse it.
    using MacFollower = std::function<void(const MacAddress&)>;
    VirtioNet(std::vector<std::unique_ptr<NetBackend>> wire, MacAddress mac,
              std::string label = "virtio-net", std::unique_ptr<PortFilter> filter = nullptr,
              bool vhost = false, MacFollower follow_mac = nullptr);

    uint32_t device_type() const override;
    std::string_view name() const override { return "virtio-net"; }
    uint64_t device_features() const override;
    uint16_t queue_count() const override;
    uint16_t queue_max_size() const override { return kQueueSize; }
    uint32_t config_size() const override { return sizeof(virtio::NetConfig); }
    void config_read(uint32_t offset, std::span<uint8_t> data) override;

    void activate(const VirtioActivation& activation) override;
    void process_queue(uint16_t queue) override;
    std::vector<DeviceWorker::Source> worker_sources() override;
    bool reads_notifications(uint16_t queue) const override;
    void reset() override;
    // Whether vhost-net moves the frames now.
    bool uses_vhost() const { return vhost_running_; }

    // Announces the vNIC's MAC to the switches on the wire, as ESX's notify
    // switches and QEMU's announce-self do: a broadcast RARP from the MAC, so
    // they learn where it is now. From any thread; whether or not the driver
    // runs the device.
    void announce();
    uint64_t announcements() const { return announcements_; }
    // vhost-net's signals that went through the VMM because their vector was
    // masked (or had no irqfd); the others went to KVM directly.
    uint64_t vhost_signals_relayed() const { return vhost_signals_relayed_; }

    // Takes the link down or up, from any thread; the guest's driver hears
    // of it through a configuration change interrupt.
    void set_link(bool up);
    bool link_up() const { return link_up_; }

    const Counters& counters() const { return counters_; }
    size_t queue_pairs() const { return pairs_.size(); }
    // The pairs the driver uses now.
    size_t queue_pairs_in_use() const { return pairs_in_use_; }
    // The security policy's rules on the TAP, if it has any.
    PortFilter* filter() const { return filter_.get(); }
    MacAddress mac() const;

private:
    // A receive and a transmit queue and the TAP queue they move frames
    // through, with the frame being received and the chains it has filled.
    struct QueuePair {
        std::unique_ptr<NetBackend> backend;
        std::unique_ptr<VhostNet> vhost;
        // receive, transmit: where vhost signals used buffers while the queue's
        // vector is masked, relayed by the worker (else straight to the irqfd)
        std::array<EventFd, 2> vhost_calls;
        std::vector<uint8_t> frame;
        size_t frame_length = 0;
        size_t frame_delivered = 0;
        struct FilledChain {
            uint16_t head;
            uint32_t written;
            std::vector<GuestBuffer> writable;
        };
        std::vector<FilledChain> frame_chains;
    };

    uint16_t control_queue() const { return static_cast<uint16_t>(2 * pairs_.size()); }
    // Hands every pair's queues to vhost-net, or leaves them here (logging
    // why) when it cannot.
    void start_vhost();
    // Points vhost's signals at the irqfds the transport offers.
    void route_vhost_signals();
    void on_link_changed();
    void receive(size_t pair);
    // Copies the pair's waiting frame into the guest's chains; false when
    // they ran out first (the frame stays, with the chains it has filled).
    bool deliver(QueuePair& pair, Virtqueue& rx);
    // Whether the guest's receive filter lets a frame in.
    bool wanted(std::span<const uint8_t> frame) const;
    void transmit(size_t pair);
    void control();
    uint8_t control_command(uint8_t command_class, uint8_t command, std::span<const uint8_t> data);
    uint8_t set_mac_table(std::span<const uint8_t> data);
    // The driver uses the first `count` pairs: the TAP steers flows to those.
    void use_queue_pairs(size_t count);
    bool negotiated(int feature) const;

    std::vector<QueuePair> pairs_;
    std::atomic<size_t> pairs_in_use_{1};
    std::atomic<uint64_t> announcements_{0};
    std::atomic<uint64_t> vhost_signals_relayed_{0};
    // The worker changes mac_ and reads it freely; vCPUs read it for the
    // configuration under the lock.
    mutable std::mutex mac_mutex_;
    MacAddress mac_;
    const std::unique_ptr<PortFilter> filter_;
    const MacFollower follow_mac_;
    std::string label_;
    RateLimitedLog log_;
    Counters counters_;
    std::optional<VirtioActivation> active_;
    std::atomic<bool> link_up_{true};
    const bool vhost_wanted_;
    std::atomic<bool> vhost_running_{false};
    // Signalled by set_link: the worker tells the driver.
    EventFd link_changed_;

    // Receive filter, as the control queue set it.
    bool promiscuous_ = true;
    bool all_multicast_ = true;
    std::set<MacAddress> unicast_filter_;
    std::set<MacAddress> multicast_filter_;
    bool unicast_overflow_ = false;  // a table larger than kMacTableEntries
    bool multicast_overflow_ = false;
};

}  // namespace vireo
