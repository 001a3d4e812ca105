#include "devices/virtio/net.h"

#include <linux/if_tun.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "devices/virtio/guest_buffers.h"
#include "devices/virtio/virtio_spec.h"

namespace vireo {
namespace {

uint16_t receive_queue(size_t pair) {
    return static_cast<uint16_t>(2 * pair);
}
uint16_t transmit_queue(size_t pair) {
    return static_cast<uint16_t>(2 * pair + 1);
}
constexpr size_t kEthernetHeaderBytes = 14;
// A control command's readable part: class, command, and a MAC table of a
// few hundred entries at most.
constexpr uint64_t kMaxControlBytes = 16 * 1024;
constexpr MacAddress kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

uint16_t load_le16(std::span<const uint8_t> bytes) {
    uint16_t value;
    std::memcpy(&value, bytes.data(), sizeof(value));
    return value;
}

uint32_t load_le32(std::span<const uint8_t> bytes) {
    uint32_t value;
    std::memcpy(&value, bytes.data(), sizeof(value));
    return value;
}

}  // namespace

VirtioNet::VirtioNet(std::vector<std::unique_ptr<NetBackend>> wire, MacAddress mac,
                     std::string label, std::unique_ptr<PortFilter> filter, bool vhost,
                     MacFollower follow_mac)
    : pairs_(wire.size()),
      mac_(mac),
      filter_(std::move(filter)),
      follow_mac_(std::move(follow_mac)),
      label_(std::move(label)),
      log_(label_),
      vhost_wanted_(vhost) {
    if (wire.empty() || wire.size() > kMaxQueuePairs) {
        fail("{}: {} queue pairs; a vNIC has 1 to {}", label_, wire.size(), kMaxQueuePairs);
    }
    for (size_t i = 0; i < wire.size(); ++i) {
        pairs_[i].backend = std::move(wire[i]);
        pairs_[i].frame.resize(kMaxFrameBytes);
    }
}

uint32_t VirtioNet::device_type() const {
    return virtio::kDeviceNet;
}

uint16_t VirtioNet::queue_count() const {
    return static_cast<uint16_t>(control_queue() + 1);
}

uint64_t VirtioNet::device_features() const {
    using namespace virtio;
    uint64_t features = pairs_.size() > 1 ? uint64_t{1} << kNetFeatureMq : 0;
    for (int bit : {kNetFeatureCsum, kNetFeatureGuestCsum, kNetFeatureMac, kNetFeatureGuestTso4,
                    kNetFeatureGuestTso6, kNetFeatureGuestEcn, kNetFeatureHostTso4,
                    kNetFeatureHostTso6, kNetFeatureHostEcn, kNetFeatureMrgRxbuf, kNetFeatureStatus,
                    kNetFeatureCtrlVq, kNetFeatureCtrlRx, kNetFeatureCtrlMacAddr}) {
        features |= uint64_t{1} << bit;
    }
    return features;
}

MacAddress VirtioNet::mac() const {
    std::lock_guard guard(mac_mutex_);
    return mac_;
}

void VirtioNet::config_read(uint32_t offset, std::span<uint8_t> data) {
    virtio::NetConfig config{};
    config.mac = mac();
    config.status = link_up_ ? virtio::kNetStatusLinkUp : 0;
    config.max_virtqueue_pairs = static_cast<uint16_t>(pairs_.size());
    auto bytes = std::as_bytes(std::span(&config, 1));
    std::memcpy(data.data(), bytes.data() + offset, data.size());
}

bool VirtioNet::negotiated(int feature) const {
    return (active_->features >> feature) & 1;
}

void VirtioNet::activate(const VirtioActivation& activation) {
    active_.emplace(activation);
    promiscuous_ = all_multicast_ = true;
    unicast_filter_.clear();
    multicast_filter_.clear();
    unicast_overflow_ = multicast_overflow_ = false;
    // The TAP hands over checksum-pending and segmented frames only as far as
    // the driver takes them; the host stack finishes the rest.
    unsigned offloads = 0;
    if (negotiated(virtio::kNetFeatureGuestCsum)) {
        offloads |= TUN_F_CSUM;
        if (negotiated(virtio::kNetFeatureGuestTso4)) {
            offloads |= TUN_F_TSO4;
        }
        if (negotiated(virtio::kNetFeatureGuestTso6)) {
            offloads |= TUN_F_TSO6;
        }
        if ((offloads & (TUN_F_TSO4 | TUN_F_TSO6)) && negotiated(virtio::kNetFeatureGuestEcn)) {
            offloads |= TUN_F_TSO_ECN;
        }
    }
    try {
        for (QueuePair& pair : pairs_) {
            pair.backend->set_offloads(offloads);
        }
    } catch (const Error& error) {
        log_.warn("{}: receive offloads stay off: {}", label_, error.what());
    }
    use_queue_pairs(1);  // until the driver asks for more
    start_vhost();
}

void VirtioNet::reset() {
    vhost_running_ = false;
    active_.reset();
    for (QueuePair& pair : pairs_) {
        pair.vhost.reset();  // closing it stops its queues
        pair.frame_length = 0;
        pair.frame_delivered = 0;
        pair.frame_chains.clear();
        try {
            pair.backend->set_offloads(0);
        } catch (const Error& error) {
            log_.warn("{}: {}", label_, error.what());
        }
    }
}

std::vector<DeviceWorker::Source> VirtioNet::worker_sources() {
    std::vector<DeviceWorker::Source> sources;
    for (size_t index = 0; index < pairs_.size(); ++index) {
        QueuePair& pair = pairs_[index];
        if (!pair.vhost) {
            sources.push_back({pair.backend->fd(), [this, index] { receive(index); }, true});
            continue;
        }
        for (uint32_t ring : {VhostNet::kReceiveQueue, VhostNet::kTransmitQueue}) {
            auto queue = static_cast<uint16_t>(2 * index + ring);
            sources.push_back({pair.vhost_calls[ring].fd(), [this, &pair, ring, queue] {
                                   pair.vhost_calls[ring].consume();
                                   ++vhost_signals_relayed_;
                                   active_->interrupt.signal_used(queue);
                               }});
        }
    }
    sources.push_back({link_changed_.fd(), [this] { on_link_changed(); }});
    return sources;
}

bool VirtioNet::reads_notifications(uint16_t queue) const {
    return vhost_running_ && queue < control_queue();
}

void VirtioNet::on_link_changed() {
    link_changed_.consume();
    for (QueuePair& pair : pairs_) {
        if (!pair.vhost) {
            continue;
        }
        // vhost has no link: the TAP is detached from the queues while down.
        for (uint32_t queue : {VhostNet::kReceiveQueue, VhostNet::kTransmitQueue}) {
            try {
                link_up_ ? pair.vhost->start_backend(queue, pair.backend->fd())
                         : pair.vhost->stop_backend(queue);
            } catch (const Error& error) {
                log_.warn("{}: {}", label_, error.what());
            }
        }
    }
    if (active_) {
        active_->interrupt.signal_config_change();
    }
}

void VirtioNet::start_vhost() {
    using namespace virtio;
    if (!vhost_wanted_ || active_->notifiers.size() < control_queue()) {
        return;
    }
    // vhost implements the rings; offloads are the TAP's business, the
    // control queue stays here.
    constexpr uint64_t kRingFeatures =
        uint64_t{1} << kFeatureVersion1 | uint64_t{1} << kFeatureIndirectDesc |
        uint64_t{1} << kFeatureEventIdx | uint64_t{1} << kNetFeatureMrgRxbuf;
    std::vector<VhostNet::MemoryRegion> memory;
    for (const GuestMemory::Region& region : active_->memory.regions()) {
        memory.push_back({region.guest_address, region.size, region.host});
    }
    // Every pair in vhost-net (one instance, so one kernel thread, each), or none.
    try {
        for (size_t index = 0; index < pairs_.size(); ++index) {
            QueuePair& pair = pairs_[index];
            std::unique_ptr<VhostNet> vhost = VhostNet::open();
            uint64_t features = active_->features & kRingFeatures;
            if ((features & ~vhost->features()) != 0) {
                fail("vhost-net lacks features {:#x}", features & ~vhost->features());
            }
            vhost->configure(features, memory);
            for (uint32_t ring_index : {VhostNet::kReceiveQueue, VhostNet::kTransmitQueue}) {
                auto queue = static_cast<uint16_t>(2 * index + ring_index);
                const Virtqueue& ring = active_->queues[queue];
                if (!ring.ready()) {
                    fail("queue {} is not set up", queue);
                }
                Virtqueue::HostRings rings = ring.host_rings();
                vhost->start(ring_index,
                             {ring.size(), rings.descriptors, rings.available, rings.used,
                              active_->notifiers[queue].fd(), pair.vhost_calls[ring_index].fd()},
                             link_up_ ? pair.backend->fd() : -1);
            }
            pair.vhost = std::move(vhost);
        }
        vhost_running_ = true;
    } catch (const Error& error) {
        for (QueuePair& pair : pairs_) {
            pair.vhost.reset();
        }
        log_.warn("{}: frames move in the VMM, not in vhost-net: {}", label_, error.what());
        return;
    }
    route_vhost_signals();
}

void VirtioNet::route_vhost_signals() {
    // vhost signals the vector's irqfd itself while the vector may fire, as
    // QEMU arranges it; while masked, it signals the relay (worker_sources), so
    // that the transport keeps the interrupt pending.
    for (size_t index = 0; index < pairs_.size(); ++index) {
        QueuePair& pair = pairs_[index];
        for (uint32_t ring : {VhostNet::kReceiveQueue, VhostNet::kTransmitQueue}) {
            auto queue = static_cast<uint16_t>(2 * index + ring);
            active_->interrupt.route_used_signals(queue, [this, &pair, ring](int fd) {
                try {
                    pair.vhost->set_call(ring, fd >= 0 ? fd : pair.vhost_calls[ring].fd());
                } catch (const Error& error) {
                    log_.warn("{}: {}", label_, error.what());
                }
            });
        }
    }
}

void VirtioNet::announce() {
    std::array<uint8_t, NetBackend::kHeaderBytes + kAnnouncementBytes> packet{};
    std::array<uint8_t, kAnnouncementBytes> frame = rarp_announcement(mac());
    std::copy(frame.begin(), frame.end(), packet.begin() + NetBackend::kHeaderBytes);
    iovec whole{packet.data(), packet.size()};
    if (link_up_ && pairs_[0].backend->write({&whole, 1})) {
        ++announcements_;
    }
}

void VirtioNet::set_link(bool up) {
    if (link_up_.exchange(up) != up) {
        link_changed_.signal();
    }
}

void VirtioNet::process_queue(uint16_t queue) {
    if (!active_) {
        return;
    }
    if (queue == control_queue()) {
        if (negotiated(virtio::kNetFeatureCtrlVq)) {
            control();
        }
    } else if (queue < control_queue()) {
        // New receive buffers: a waiting frame may go now.
        queue % 2 == 0 ? receive(queue / 2) : transmit(queue / 2);
    }
}

// ---- receive ----

void VirtioNet::receive(size_t index) {
    if (!active_) {
        return;
    }
    QueuePair& pair = pairs_[index];
    Virtqueue& rx = active_->queues[receive_queue(index)];
    while (true) {
        if (pair.frame_length == 0) {
            size_t length = pair.backend->read(pair.frame);
            if (length == 0) {
                break;
            }
            std::span<const uint8_t> frame(pair.frame.data() + NetBackend::kHeaderBytes,
                                           length - std::min(length, NetBackend::kHeaderBytes));
            if (!link_up_) {
                ++counters_.rx_dropped;  // nothing arrives on an unplugged cable
                continue;
            }
            if (frame.size() < kEthernetHeaderBytes || !wanted(frame)) {
                continue;  // filtered, as a NIC's MAC filter does
            }
            pair.frame_length = length;
        }
        if (!deliver(pair, rx)) {
            break;
        }
        if (rx.needs_interrupt_mid_batch()) {
            active_->interrupt.signal_used(receive_queue(index));
        }
    }
    if (rx.needs_interrupt()) {
        active_->interrupt.signal_used(receive_queue(index));
    }
}

bool VirtioNet::wanted(std::span<const uint8_t> frame) const {
    if (promiscuous_) {
        return true;
    }
    MacAddress destination;
    std::copy_n(frame.begin(), destination.size(), destination.begin());
    if (destination[0] & 1) {  // group address
        return destination == kBroadcast || all_multicast_ || multicast_overflow_ ||
               multicast_filter_.contains(destination);
    }
    return destination == mac_ || unicast_overflow_ || unicast_filter_.contains(destination);
}

bool VirtioNet::deliver(QueuePair& pair, Virtqueue& rx) {
    const GuestMemory& memory = active_->memory;
    bool mergeable = negotiated(virtio::kNetFeatureMrgRxbuf);
    auto drop = [&](uint16_t head) {
        rx.push(head, 0);  // Linux counts it as a length error and reuses the buffer
        ++counters_.rx_dropped;
        pair.frame_length = pair.frame_delivered = 0;
    };
    while (pair.frame_delivered < pair.frame_length) {
        std::optional<DescriptorChain> chain = rx.pop();
        if (!chain) {
            return false;
        }
        uint64_t room = total_length(chain->writable);
        uint64_t left = pair.frame_length - pair.frame_delivered;
        if ((pair.frame_chains.empty() && room < sizeof(virtio::NetHeader)) ||
            (!mergeable && room < left)) {
            log_.debug("{}: a {}-byte receive buffer cannot take a {}-byte frame; dropped", label_,
                       room, pair.frame_length);
            drop(chain->head);
            return true;
        }
        uint64_t length = std::min(room, left);
        uint32_t written =
            scatter(memory, chain->writable, {pair.frame.data() + pair.frame_delivered, length});
        pair.frame_chains.push_back({chain->head, written, std::move(chain->writable)});
        pair.frame_delivered += written;
        if (written < length || !mergeable) {
            break;
        }
    }
    if (pair.frame_delivered < pair.frame_length) {  // guest RAM refused the copy
        for (const QueuePair::FilledChain& filled : pair.frame_chains) {
            rx.push(filled.head, 0);
        }
        pair.frame_chains.clear();
        ++counters_.rx_dropped;
        pair.frame_length = pair.frame_delivered = 0;
        return true;
    }
    auto buffers = static_cast<uint16_t>(pair.frame_chains.size());
    std::array<uint8_t, 2> count{static_cast<uint8_t>(buffers), static_cast<uint8_t>(buffers >> 8)};
    scatter(memory, pair.frame_chains.front().writable, count,
            offsetof(virtio::NetHeader, num_buffers));
    for (const QueuePair::FilledChain& filled : pair.frame_chains) {
        rx.push(filled.head, filled.written);
    }
    ++counters_.rx_packets;
    counters_.rx_bytes += pair.frame_length - NetBackend::kHeaderBytes;
    pair.frame_chains.clear();
    pair.frame_length = pair.frame_delivered = 0;
    return true;
}

// ---- transmit ----

void VirtioNet::transmit(size_t index) {
    Virtqueue& tx = active_->queues[transmit_queue(index)];
    std::vector<iovec> frame;
    while (std::optional<DescriptorChain> chain = tx.pop()) {
        uint64_t length = total_length(chain->readable);
        bool sent = false;
        if (length >= NetBackend::kHeaderBytes + kEthernetHeaderBytes && length <= kMaxFrameBytes) {
            frame.clear();
            bool in_ram = true;
            for (const GuestBuffer& buffer : chain->readable) {
                std::optional<std::span<uint8_t>> bytes =
                    active_->memory.span(buffer.address, buffer.length);
                in_ram = in_ram && bytes.has_value();
                if (bytes) {
                    frame.push_back({bytes->data(), bytes->size()});
                }
            }
            sent = in_ram && link_up_ && pairs_[index].backend->write(frame);
        }
        if (sent) {
            ++counters_.tx_packets;
            counters_.tx_bytes += length - NetBackend::kHeaderBytes;
        } else {
            log_.debug("{}: a {}-byte frame was not sent", label_, length);
            ++counters_.tx_dropped;
        }
        tx.push(chain->head, 0);
        if (tx.needs_interrupt_mid_batch()) {
            active_->interrupt.signal_used(transmit_queue(index));
        }
    }
    if (tx.needs_interrupt()) {
        active_->interrupt.signal_used(transmit_queue(index));
    }
}

// ---- control ----

void VirtioNet::control() {
    Virtqueue& queue = active_->queues[control_queue()];
    while (std::optional<DescriptorChain> chain = queue.pop()) {
        uint64_t in = total_length(chain->readable);
        uint64_t out = total_length(chain->writable);
        if (out == 0) {
            log_.warn("{}: a control command without room for its ack; ignored", label_);
            queue.push(chain->head, 0);
            continue;
        }
        uint8_t ack = virtio::kNetErr;
        if (in >= 2 && in <= kMaxControlBytes) {
            std::vector<uint8_t> command(in);
            if (gather(active_->memory, chain->readable, command)) {
                ack = control_command(command[0], command[1], std::span(command).subspan(2));
            }
        }
        scatter(active_->memory, chain->writable, {&ack, 1}, out - 1);
        queue.push(chain->head, static_cast<uint32_t>(out));
    }
    if (queue.needs_interrupt()) {
        active_->interrupt.signal_used(control_queue());
    }
}

uint8_t VirtioNet::control_command(uint8_t command_class, uint8_t command,
                                   std::span<const uint8_t> data) {
    using namespace virtio;
    if (command_class == kNetCtrlRx && negotiated(kNetFeatureCtrlRx) && data.size() == 1) {
        if (command == kNetCtrlRxPromisc) {
            promiscuous_ = data[0] != 0;
            return kNetOk;
        }
        if (command == kNetCtrlRxAllmulti) {
            all_multicast_ = data[0] != 0;
            return kNetOk;
        }
    }
    if (command_class == kNetCtrlMq && command == kNetCtrlMqVqPairsSet &&
        negotiated(kNetFeatureMq) && data.size() == 2) {
        uint16_t count = load_le16(data);
        if (count < 1 || count > pairs_.size()) {
            return kNetErr;
        }
        use_queue_pairs(count);
        return kNetOk;
    }
    if (command_class == kNetCtrlMac && command == kNetCtrlMacTableSet) {
        return set_mac_table(data);
    }
    if (command_class == kNetCtrlMac && command == kNetCtrlMacAddrSet &&
        negotiated(kNetFeatureCtrlMacAddr) && data.size() == 6) {
        MacAddress mac;
        std::copy(data.begin(), data.end(), mac.begin());
        // The policy follows first: a MAC it cannot follow is refused.
        try {
            if (filter_) {
                filter_->set_effective_mac(mac);
            } else if (follow_mac_) {
                follow_mac_(mac);
            }
        } catch (const Error& error) {
            log_.warn("{}: MAC {} refused: {}", label_, format_mac(mac), error.what());
            return kNetErr;
        }
        std::lock_guard guard(mac_mutex_);
        mac_ = mac;
        return kNetOk;
    }
    log_.debug("{}: control command {}.{} ({} bytes) refused", label_, command_class, command,
               data.size());
    return kNetErr;
}

void VirtioNet::use_queue_pairs(size_t count) {
    pairs_in_use_ = count;
    for (size_t index = 0; index < pairs_.size(); ++index) {
        try {
            pairs_[index].backend->set_enabled(index < count);
        } catch (const Error& error) {
            log_.warn("{}: queue pair {}: {}", label_, index, error.what());
        }
    }
}

// Two tables, unicast then multicast: a 32-bit count, then that many
// addresses. Every byte must belong to them.
uint8_t VirtioNet::set_mac_table(std::span<const uint8_t> data) {
    std::set<MacAddress> tables[2];
    bool overflow[2] = {false, false};
    size_t at = 0;
    for (int kind = 0; kind < 2; ++kind) {
        if (data.size() - at < 4) {
            return virtio::kNetErr;
        }
        uint32_t count = load_le32(data.subspan(at));
        at += 4;
        if (count > (data.size() - at) / 6) {
            return virtio::kNetErr;
        }
        overflow[kind] = count > kMacTableEntries;
        for (uint32_t i = 0; i < count && !overflow[kind]; ++i) {
            MacAddress address;
            std::copy_n(data.begin() + static_cast<ptrdiff_t>(at + 6 * i), 6, address.begin());
            tables[kind].insert(address);
        }
        at += size_t{6} * count;
    }
    if (at != data.size()) {
        return virtio::kNetErr;
    }
    unicast_filter_ = std::move(tables[0]);
    multicast_filter_ = std::move(tables[1]);
    unicast_overflow_ = overflow[0];
    multicast_overflow_ = overflow[1];
    return virtio::kNetOk;
}

}  // namespace vireo
