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

constexpr uint16_t kReceiveQueue = 0;
constexpr uint16_t kTransmitQueue = 1;
constexpr uint16_t kControlQueue = 2;
constexpr size_t kEthernetHeaderBytes = 14;
// A control command's readable part: class, command, and a MAC table of a
// few hundred entries at most.
constexpr uint64_t kMaxControlBytes = 16 * 1024;
constexpr MacAddress kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

uint32_t load_le32(std::span<const uint8_t> bytes) {
    uint32_t value;
    std::memcpy(&value, bytes.data(), sizeof(value));
    return value;
}

}  // namespace

VirtioNet::VirtioNet(std::unique_ptr<NetBackend> backend, MacAddress mac, std::string label,
                     std::unique_ptr<PortFilter> filter, bool vhost)
    : backend_(std::move(backend)),
      mac_(mac),
      filter_(std::move(filter)),
      label_(std::move(label)),
      log_(label_),
      vhost_wanted_(vhost),
      frame_(kMaxFrameBytes) {}

uint32_t VirtioNet::device_type() const {
    return virtio::kDeviceNet;
}

uint64_t VirtioNet::device_features() const {
    using namespace virtio;
    uint64_t features = 0;
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
    config.max_virtqueue_pairs = 1;
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
        backend_->set_offloads(offloads);
    } catch (const Error& error) {
        log_.warn("{}: receive offloads stay off: {}", label_, error.what());
    }
    start_vhost();
}

void VirtioNet::reset() {
    vhost_.reset();  // closing it stops its queues
    vhost_running_ = false;
    active_.reset();
    frame_length_ = 0;
    frame_delivered_ = 0;
    frame_chains_.clear();
    try {
        backend_->set_offloads(0);
    } catch (const Error& error) {
        log_.warn("{}: {}", label_, error.what());
    }
}

std::vector<DeviceWorker::Source> VirtioNet::worker_sources() {
    DeviceWorker::Source link = {link_changed_.fd(), [this] { on_link_changed(); }};
    if (!vhost_) {
        return {{backend_->fd(), [this] { receive(); }, true}, link};
    }
    std::vector<DeviceWorker::Source> sources = {link};
    for (uint16_t queue : {kReceiveQueue, kTransmitQueue}) {
        sources.push_back({vhost_calls_[queue].fd(), [this, queue] {
                               vhost_calls_[queue].consume();
                               active_->interrupt.signal_used(queue);
                           }});
    }
    return sources;
}

bool VirtioNet::reads_notifications(uint16_t queue) const {
    return vhost_ && (queue == kReceiveQueue || queue == kTransmitQueue);
}

void VirtioNet::on_link_changed() {
    link_changed_.consume();
    if (vhost_) {
        // vhost has no link: the TAP is detached from the queues while down.
        for (uint32_t queue : {VhostNet::kReceiveQueue, VhostNet::kTransmitQueue}) {
            try {
                link_up_ ? vhost_->start_backend(queue, backend_->fd())
                         : vhost_->stop_backend(queue);
            } catch (const Error& error) {
                log_.warn("{}: {}", label_, error.what());
            }
        }
    }
    active_->interrupt.signal_config_change();
}

void VirtioNet::start_vhost() {
    using namespace virtio;
    if (!vhost_wanted_ || active_->notifiers.size() <= kTransmitQueue) {
        return;
    }
    // vhost implements the rings; offloads are the TAP's business, the
    // control queue stays here.
    constexpr uint64_t kRingFeatures =
        uint64_t{1} << kFeatureVersion1 | uint64_t{1} << kFeatureIndirectDesc |
        uint64_t{1} << kFeatureEventIdx | uint64_t{1} << kNetFeatureMrgRxbuf;
    try {
        std::unique_ptr<VhostNet> vhost = VhostNet::open();
        uint64_t features = active_->features & kRingFeatures;
        if ((features & ~vhost->features()) != 0) {
            fail("vhost-net lacks features {:#x}", features & ~vhost->features());
        }
        std::vector<VhostNet::MemoryRegion> memory;
        for (const GuestMemory::Region& region : active_->memory.regions()) {
            memory.push_back({region.guest_address, region.size, region.host});
        }
        vhost->configure(features, memory);
        for (uint16_t queue : {kReceiveQueue, kTransmitQueue}) {
            const Virtqueue& ring = active_->queues[queue];
            if (!ring.ready()) {
                fail("queue {} is not set up", queue);
            }
            Virtqueue::HostRings rings = ring.host_rings();
            vhost->start(queue,
                         {ring.size(), rings.descriptors, rings.available, rings.used,
                          active_->notifiers[queue].fd(), vhost_calls_[queue].fd()},
                         link_up_ ? backend_->fd() : -1);
        }
        vhost_ = std::move(vhost);
        vhost_running_ = true;
    } catch (const Error& error) {
        log_.warn("{}: frames move in the VMM, not in vhost-net: {}", label_, error.what());
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
    switch (queue) {
        case kReceiveQueue:
            receive();  // new buffers: a waiting frame may go now
            break;
        case kTransmitQueue:
            transmit();
            break;
        case kControlQueue:
            if (negotiated(virtio::kNetFeatureCtrlVq)) {
                control();
            }
            break;
        default:
            break;
    }
}

// ---- receive ----

void VirtioNet::receive() {
    if (!active_) {
        return;
    }
    while (true) {
        if (frame_length_ == 0) {
            size_t length = backend_->read(frame_);
            if (length == 0) {
                break;
            }
            std::span<const uint8_t> frame(frame_.data() + NetBackend::kHeaderBytes,
                                           length - std::min(length, NetBackend::kHeaderBytes));
            if (!link_up_) {
                ++counters_.rx_dropped;  // nothing arrives on an unplugged cable
                continue;
            }
            if (frame.size() < kEthernetHeaderBytes || !wanted(frame)) {
                continue;  // filtered, as a NIC's MAC filter does
            }
            frame_length_ = length;
        }
        if (!deliver()) {
            break;
        }
    }
    Virtqueue& rx = active_->queues[kReceiveQueue];
    if (rx.needs_interrupt()) {
        active_->interrupt.signal_used(kReceiveQueue);
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

bool VirtioNet::deliver() {
    Virtqueue& rx = active_->queues[kReceiveQueue];
    const GuestMemory& memory = active_->memory;
    bool mergeable = negotiated(virtio::kNetFeatureMrgRxbuf);
    auto drop = [&](uint16_t head) {
        rx.push(head, 0);  // Linux counts it as a length error and reuses the buffer
        ++counters_.rx_dropped;
        frame_length_ = frame_delivered_ = 0;
    };
    while (frame_delivered_ < frame_length_) {
        std::optional<DescriptorChain> chain = rx.pop();
        if (!chain) {
            return false;
        }
        uint64_t room = total_length(chain->writable);
        uint64_t left = frame_length_ - frame_delivered_;
        if ((frame_chains_.empty() && room < sizeof(virtio::NetHeader)) ||
            (!mergeable && room < left)) {
            log_.debug("{}: a {}-byte receive buffer cannot take a {}-byte frame; dropped", label_,
                       room, frame_length_);
            drop(chain->head);
            return true;
        }
        uint64_t length = std::min(room, left);
        uint32_t written =
            scatter(memory, chain->writable, {frame_.data() + frame_delivered_, length});
        frame_chains_.push_back({chain->head, written, std::move(chain->writable)});
        frame_delivered_ += written;
        if (written < length || !mergeable) {
            break;
        }
    }
    if (frame_delivered_ < frame_length_) {  // guest RAM refused the copy
        for (const FilledChain& filled : frame_chains_) {
            rx.push(filled.head, 0);
        }
        frame_chains_.clear();
        ++counters_.rx_dropped;
        frame_length_ = frame_delivered_ = 0;
        return true;
    }
    auto buffers = static_cast<uint16_t>(frame_chains_.size());
    std::array<uint8_t, 2> count{static_cast<uint8_t>(buffers), static_cast<uint8_t>(buffers >> 8)};
    scatter(memory, frame_chains_.front().writable, count,
            offsetof(virtio::NetHeader, num_buffers));
    for (const FilledChain& filled : frame_chains_) {
        rx.push(filled.head, filled.written);
    }
    ++counters_.rx_packets;
    counters_.rx_bytes += frame_length_ - NetBackend::kHeaderBytes;
    frame_chains_.clear();
    frame_length_ = frame_delivered_ = 0;
    return true;
}

// ---- transmit ----

void VirtioNet::transmit() {
    Virtqueue& tx = active_->queues[kTransmitQueue];
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
            sent = in_ram && link_up_ && backend_->write(frame);
        }
        if (sent) {
            ++counters_.tx_packets;
            counters_.tx_bytes += length - NetBackend::kHeaderBytes;
        } else {
            log_.debug("{}: a {}-byte frame was not sent", label_, length);
            ++counters_.tx_dropped;
        }
        tx.push(chain->head, 0);
    }
    if (tx.needs_interrupt()) {
        active_->interrupt.signal_used(kTransmitQueue);
    }
}

// ---- control ----

void VirtioNet::control() {
    Virtqueue& queue = active_->queues[kControlQueue];
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
        active_->interrupt.signal_used(kControlQueue);
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
    if (command_class == kNetCtrlMac && command == kNetCtrlMacTableSet) {
        return set_mac_table(data);
    }
    if (command_class == kNetCtrlMac && command == kNetCtrlMacAddrSet &&
        negotiated(kNetFeatureCtrlMacAddr) && data.size() == 6) {
        MacAddress mac;
        std::copy(data.begin(), data.end(), mac.begin());
        if (filter_) {
            // The policy follows first: a MAC it cannot follow is refused.
            try {
                filter_->set_effective_mac(mac);
            } catch (const Error& error) {
                log_.warn("{}: MAC {} refused: {}", label_, format_mac(mac), error.what());
                return kNetErr;
            }
        }
        std::lock_guard guard(mac_mutex_);
        mac_ = mac;
        return kNetOk;
    }
    log_.debug("{}: control command {}.{} ({} bytes) refused", label_, command_class, command,
               data.size());
    return kNetErr;
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
