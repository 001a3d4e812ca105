#include "devices/virtio/pci_transport.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "base/error.h"
#include "devices/virtio/virtio_spec.h"

namespace vireo {

namespace {

constexpr uint64_t kVersion1 = uint64_t{1} << virtio::kFeatureVersion1;
// Virtqueue features the transport implements for every device.
constexpr uint64_t kTransportFeatures = kVersion1 | uint64_t{1} << virtio::kFeatureIndirectDesc |
                                        uint64_t{1} << virtio::kFeatureEventIdx;

uint32_t class_code(uint32_t device_type) {
    switch (device_type) {
        case virtio::kDeviceNet:
            return 0x020000;  // network controller, Ethernet
        case virtio::kDeviceBlock:
            return 0x010000;  // mass storage, SCSI (what guests expect of virtio-blk)
        case virtio::kDeviceConsole:
            return 0x078000;  // communication controller, other
        default:
            return 0xff0000;  // unassigned class
    }
}

template <typename T>
std::span<const uint8_t> bytes_of(const T& value) {
    return {reinterpret_cast<const uint8_t*>(&value), sizeof(T)};
}

// A little-endian register value from an access of 1 to 8 bytes.
uint64_t value_of(std::span<const uint8_t> data) {
    uint64_t value = 0;
    std::memcpy(&value, data.data(), std::min<size_t>(data.size(), sizeof(value)));
    return value;
}

virtio::PciCap make_cap(uint8_t type, uint8_t length, uint64_t offset, uint64_t size) {
    virtio::PciCap cap{};
    cap.cap_vndr = pci::kCapabilityVendor;
    cap.cap_len = length;
    cap.cfg_type = type;
    cap.bar = VirtioPciDevice::kBar;
    cap.offset = static_cast<uint32_t>(offset);
    cap.length = static_cast<uint32_t>(size);
    return cap;
}

}  // namespace

uint16_t VirtioPciDevice::checked_queue_count(const VirtioDevice& device, const std::string& name) {
    uint16_t count = device.queue_count();
    uint16_t max_size = device.queue_max_size();
    if (count == 0 || count > kRegionSize / kNotifyOffMultiplier || max_size == 0 ||
        max_size > virtio::kMaxQueueSize || !std::has_single_bit(max_size) ||
        device.config_size() > kRegionSize || device.device_type() > 0x3f) {
        fail(
            "{}: {} queues of up to {} entries and {} bytes of configuration do not fit the "
            "virtio PCI layout (1-1024 queues, power-of-two sizes up to 32768, 4 KiB)",
            name, count, max_size, device.config_size());
    }
    return count;
}

VirtioPciDevice::VirtioPciDevice(std::unique_ptr<VirtioDevice> device, const GuestMemory& memory,
                                 MsiController& msi, IoEventRegistry* ioevents, std::string name,
                                 WorkerPace pace)
    : device_(std::move(device)),
      memory_(memory),
      ioevents_(ioevents),
      name_(name.empty() ? std::string(device_->name()) : std::move(name)),
      pace_(pace),
      queue_count_(checked_queue_count(*device_, name_)),
      offered_features_(device_->device_features() | kTransportFeatures),
      log_(name_),
      // A vector per queue and one for configuration changes, as the table page holds.
      msix_(msi, static_cast<uint16_t>(std::min<uint64_t>(uint64_t{queue_count_} + 1,
                                                          kRegionSize / Msix::kEntrySize))),
      queue_vectors_(std::make_unique<std::atomic<uint16_t>[]>(queue_count_)),
      config_(PciIds{
          .vendor_id = virtio::kPciVendorId,
          .device_id = static_cast<uint16_t>(virtio::kPciDeviceIdBase + device_->device_type()),
          .revision_id = 1,
          .class_code = class_code(device_->device_type()),
          .subsystem_vendor_id = virtio::kPciVendorId,
          .subsystem_id = kSubsystemId,
          .interrupt_pin = 0}) {
    for (uint16_t queue = 0; queue < queue_count_; ++queue) {
        notify_.emplace_back();
        queue_vectors_[queue] = virtio::kMsiNoVector;
    }
    setup_.resize(queue_count_);
    for (QueueSetup& setup : setup_) {
        setup.size = device_->queue_max_size();
    }

    config_.add_bar(PciBar{.index = kBar, .size = kBarSize, .is_64bit = true});
    msix_.add_capability(config_, kBar, static_cast<uint32_t>(kMsixTableOffset),
                         static_cast<uint32_t>(kMsixPbaOffset));
    auto common = make_cap(virtio::kPciCapCommonCfg, sizeof(virtio::PciCap), kCommonCfgOffset,
                           sizeof(virtio::PciCommonCfg));
    config_.add_capability(bytes_of(common));
    virtio::PciNotifyCap notify{};
    notify.cap = make_cap(virtio::kPciCapNotifyCfg, sizeof(notify), kNotifyOffset,
                          uint64_t{queue_count_} * kNotifyOffMultiplier);
    notify.notify_off_multiplier = kNotifyOffMultiplier;
    config_.add_capability(bytes_of(notify));
    auto isr = make_cap(virtio::kPciCapIsrCfg, sizeof(virtio::PciCap), kIsrOffset, 1);
    config_.add_capability(bytes_of(isr));
    if (device_->config_size() > 0) {
        auto device_cfg = make_cap(virtio::kPciCapDeviceCfg, sizeof(virtio::PciCap),
                                   kDeviceCfgOffset, device_->config_size());
        config_.add_capability(bytes_of(device_cfg));
    }
    // The window's bar, offset, length and data fields are the driver's to write.
    virtio::PciCfgCap window{};
    window.cap = make_cap(virtio::kPciCapPciCfg, sizeof(window), 0, 0);
    std::array<uint8_t, sizeof(window)> writable{};
    writable[offsetof(virtio::PciCap, bar)] = 0xff;
    std::fill_n(writable.begin() + offsetof(virtio::PciCap, offset), 8, 0xff);
    std::fill_n(writable.begin() + offsetof(virtio::PciCfgCap, pci_cfg_data), 4, 0xff);
    cfg_cap_ = config_.add_capability(bytes_of(window), writable);
}

VirtioPciDevice::~VirtioPciDevice() {
    std::lock_guard lock(mutex_);
    worker_.reset();
    used_signal_routes_.clear();
    if (active_) {
        device_->reset();
    }
}

std::vector<PciBar> VirtioPciDevice::bars() const {
    return {PciBar{.index = kBar, .size = kBarSize, .is_64bit = true}};
}

uint8_t VirtioPciDevice::device_status() const {
    std::lock_guard lock(mutex_);
    return static_cast<uint8_t>(status_ | (needs_reset_ ? virtio::kStatusDeviceNeedsReset : 0));
}

// ---- PCI configuration space ----

void VirtioPciDevice::config_read(uint32_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    uint32_t window = cfg_cap_ + offsetof(virtio::PciCfgCap, pci_cfg_data);
    if (offset < window + 4 && offset + data.size() > window) {
        cfg_window_access(false);
    }
    config_.read(offset, data);
}

void VirtioPciDevice::config_write(uint32_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    config_.write(offset, data);
    msix_.config_written(config_);
    update_used_signal_routes();
    uint32_t window = cfg_cap_ + offsetof(virtio::PciCfgCap, pci_cfg_data);
    if (offset < window + 4 && offset + data.size() > window) {
        cfg_window_access(true);
    }
}

void VirtioPciDevice::cfg_window_access(bool is_write) {
    auto bar = config_.load<uint8_t>(cfg_cap_ + offsetof(virtio::PciCap, bar));
    auto offset = config_.load<uint32_t>(cfg_cap_ + offsetof(virtio::PciCap, offset));
    auto length = config_.load<uint32_t>(cfg_cap_ + offsetof(virtio::PciCap, length));
    uint32_t data_offset = cfg_cap_ + offsetof(virtio::PciCfgCap, pci_cfg_data);
    if (bar != kBar || (length != 1 && length != 2 && length != 4) || offset % length != 0 ||
        offset + uint64_t{length} > kBarSize) {
        return;  // the driver must describe an aligned access inside a BAR
    }
    std::array<uint8_t, 4> bytes{};
    if (is_write) {
        config_.read(data_offset, bytes);
        bar_write_locked(offset, std::span(bytes).first(length));
    } else {
        bar_read_locked(offset, std::span(bytes).first(length));
        config_.store(data_offset, bytes);
    }
}

// ---- BAR 0 ----

void VirtioPciDevice::bar_read(uint8_t bar, uint64_t offset, std::span<uint8_t> data) {
    if (bar != kBar || offset >= kBarSize || data.size() > kBarSize - offset) {
        std::fill(data.begin(), data.end(), 0);
        return;
    }
    std::lock_guard lock(mutex_);
    bar_read_locked(offset, data);
}

void VirtioPciDevice::bar_write(uint8_t bar, uint64_t offset, std::span<const uint8_t> data) {
    if (bar != kBar || offset >= kBarSize || data.size() > kBarSize - offset) {
        return;
    }
    if (offset >= kNotifyOffset && offset < kNotifyOffset + kRegionSize) {
        // A kick that did not go through an ioeventfd: no lock needed.
        uint64_t queue = (offset - kNotifyOffset) / kNotifyOffMultiplier;
        if (queue < queue_count_) {
            notify_[queue].signal();
        }
        return;
    }
    std::lock_guard lock(mutex_);
    bar_write_locked(offset, data);
}

void VirtioPciDevice::bar_read_locked(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    uint64_t region = offset / kRegionSize * kRegionSize;
    uint64_t inner = offset - region;
    if (inner + data.size() > kRegionSize) {
        return;  // straddles two structures
    }
    switch (region) {
        case kCommonCfgOffset:
            common_read(inner, data);
            break;
        case kIsrOffset:
            if (inner == 0 && !data.empty()) {
                data[0] = isr_.exchange(0);  // reading acknowledges
            }
            break;
        case kDeviceCfgOffset:
            if (inner + data.size() <= device_->config_size()) {
                device_->config_read(static_cast<uint32_t>(inner), data);
            }
            break;
        case kMsixTableOffset:
            if (inner + data.size() <= msix_.table_size()) {
                msix_.table_read(inner, data);
            }
            break;
        case kMsixPbaOffset:
            if (inner + data.size() <= msix_.pba_size()) {
                msix_.pba_read(inner, data);
            }
            break;
        default:
            break;
    }
}

void VirtioPciDevice::bar_write_locked(uint64_t offset, std::span<const uint8_t> data) {
    uint64_t region = offset / kRegionSize * kRegionSize;
    uint64_t inner = offset - region;
    if (inner + data.size() > kRegionSize) {
        return;
    }
    switch (region) {
        case kCommonCfgOffset:
            common_write(inner, data);
            break;
        case kDeviceCfgOffset:
            if (inner + data.size() <= device_->config_size()) {
                device_->config_write(static_cast<uint32_t>(inner), data);
            }
            break;
        case kNotifyOffset:
            if (inner / kNotifyOffMultiplier < queue_count_) {
                notify_[inner / kNotifyOffMultiplier].signal();
            }
            break;
        case kMsixTableOffset:
            if (inner + data.size() <= msix_.table_size()) {
                msix_.table_write(inner, data);
                update_used_signal_routes();  // a vector may be (un)masked
            }
            break;
        default:
            break;  // ISR and PBA are read-only
    }
}

// ---- Common configuration ----

void VirtioPciDevice::common_read(uint64_t offset, std::span<uint8_t> data) {
    virtio::PciCommonCfg cfg{};
    cfg.device_feature_select = device_feature_select_;
    cfg.device_feature =
        device_feature_select_ < 2
            ? static_cast<uint32_t>(offered_features_ >> (32 * device_feature_select_))
            : 0;
    cfg.driver_feature_select = driver_feature_select_;
    cfg.driver_feature =
        driver_feature_select_ < 2
            ? static_cast<uint32_t>(driver_features_ >> (32 * driver_feature_select_))
            : 0;
    cfg.config_msix_vector = config_vector_;
    cfg.num_queues = queue_count_;
    cfg.device_status =
        static_cast<uint8_t>(status_ | (needs_reset_ ? virtio::kStatusDeviceNeedsReset : 0));
    cfg.config_generation = config_generation_;
    cfg.queue_select = queue_select_;
    if (queue_select_ < queue_count_) {
        const QueueSetup& setup = setup_[queue_select_];
        cfg.queue_size = setup.size;
        cfg.queue_msix_vector = queue_vectors_[queue_select_];
        cfg.queue_enable = setup.enabled ? 1 : 0;
        cfg.queue_notify_off = queue_select_;
        cfg.queue_desc = setup.desc;
        cfg.queue_driver = setup.driver;
        cfg.queue_device = setup.device;
    }
    auto bytes = bytes_of(cfg);
    for (size_t i = 0; i < data.size() && offset + i < bytes.size(); ++i) {
        data[i] = bytes[offset + i];
    }
}

uint16_t VirtioPciDevice::checked_vector(uint64_t value) const {
    // A vector outside the table cannot be mapped: the driver reads back NO_VECTOR.
    return value < msix_.vector_count() ? static_cast<uint16_t>(value) : virtio::kMsiNoVector;
}

void VirtioPciDevice::common_write(uint64_t offset, std::span<const uint8_t> data) {
    using Cfg = virtio::PciCommonCfg;
    uint64_t value = value_of(data);
    size_t size = data.size();
    QueueSetup* queue = queue_select_ < queue_count_ ? &setup_[queue_select_] : nullptr;
    // Queue addresses may be written as 32-bit halves (the spec's way) or whole.
    auto set_address = [&](uint64_t field, uint64_t QueueSetup::*member) {
        if (queue == nullptr || queue->enabled) {
            return;  // configuration of an enabled queue is fixed
        }
        uint64_t& target = queue->*member;
        if (offset == field && size == 8) {
            target = value;
        } else if (offset == field && size == 4) {
            target = (target & ~uint64_t{0xffff'ffff}) | value;
        } else if (offset == field + 4 && size == 4) {
            target = (target & 0xffff'ffff) | value << 32;
        }
    };

    switch (offset) {
        case offsetof(Cfg, device_feature_select):
            if (size == 4) {
                device_feature_select_ = static_cast<uint32_t>(value);
            }
            break;
        case offsetof(Cfg, driver_feature_select):
            if (size == 4) {
                driver_feature_select_ = static_cast<uint32_t>(value);
            }
            break;
        case offsetof(Cfg, driver_feature):
            if (size == 4 && driver_feature_select_ < 2 && !(status_ & virtio::kStatusFeaturesOk)) {
                // Bits the device does not offer are dropped (4.1.4.3.1).
                unsigned shift = 32 * driver_feature_select_;
                uint64_t word = uint64_t{0xffff'ffff} << shift;
                driver_features_ =
                    (driver_features_ & ~word) | ((value << shift) & word & offered_features_);
            }
            break;
        case offsetof(Cfg, config_msix_vector):
            if (size == 2) {
                config_vector_ = checked_vector(value);
            }
            break;
        case offsetof(Cfg, device_status):
            if (size == 1) {
                write_status(static_cast<uint8_t>(value));
            }
            break;
        case offsetof(Cfg, queue_select):
            if (size == 2) {
                queue_select_ = static_cast<uint16_t>(value);
            }
            break;
        case offsetof(Cfg, queue_size):
            if (size == 2 && queue != nullptr && !queue->enabled) {
                if (value != 0 && value <= device_->queue_max_size() &&
                    std::has_single_bit(value)) {
                    queue->size = static_cast<uint16_t>(value);
                } else {
                    log_.warn("queue {}: size {} refused (power of two up to {})", queue_select_,
                              value, device_->queue_max_size());
                }
            }
            break;
        case offsetof(Cfg, queue_msix_vector):
            if (size == 2 && queue != nullptr) {
                queue_vectors_[queue_select_] = checked_vector(value);
                update_used_signal_routes();
            }
            break;
        case offsetof(Cfg, queue_enable):
            // Writing 0 is forbidden to the driver (4.1.4.3.2): ignored.
            if (size == 2 && value == 1 && queue != nullptr && !queue->enabled) {
                queue->enabled = true;
                bind_notify(queue_select_);
            }
            break;
        case offsetof(Cfg, queue_desc):
        case offsetof(Cfg, queue_desc) + 4:
            set_address(offsetof(Cfg, queue_desc), &QueueSetup::desc);
            break;
        case offsetof(Cfg, queue_driver):
        case offsetof(Cfg, queue_driver) + 4:
            set_address(offsetof(Cfg, queue_driver), &QueueSetup::driver);
            break;
        case offsetof(Cfg, queue_device):
        case offsetof(Cfg, queue_device) + 4:
            set_address(offsetof(Cfg, queue_device), &QueueSetup::device);
            break;
        default:
            break;  // read-only fields, or not at a field's start
    }
}

// ---- Device status ----

void VirtioPciDevice::write_status(uint8_t value) {
    if (value == 0) {
        reset();
        return;
    }
    // DEVICE_NEEDS_RESET is the device's to set.
    auto wanted = static_cast<uint8_t>(value & ~virtio::kStatusDeviceNeedsReset);
    bool features_ok = wanted & virtio::kStatusFeaturesOk;
    if (features_ok && !(status_ & virtio::kStatusFeaturesOk) && !(driver_features_ & kVersion1)) {
        // Modern only: a driver that does not accept VIRTIO_F_VERSION_1 reads
        // FEATURES_OK back clear and gives up (3.1.1).
        log_.warn("FEATURES_OK refused: the driver did not accept VIRTIO_F_VERSION_1");
        wanted = static_cast<uint8_t>(wanted & ~virtio::kStatusFeaturesOk);
        features_ok = false;
    }
    if ((wanted & virtio::kStatusDriverOk) && !active_) {
        if (!features_ok) {
            log_.warn("DRIVER_OK without FEATURES_OK ignored");
            wanted = static_cast<uint8_t>(wanted & ~virtio::kStatusDriverOk);
        } else {
            status_ = wanted;
            activate();
            return;
        }
    }
    status_ = wanted;
}

void VirtioPciDevice::activate() {
    queues_.clear();
    queues_.reserve(queue_count_);
    for (const QueueSetup& setup : setup_) {
        if (setup.enabled) {
            queues_.emplace_back(
                memory_, VirtqueueConfig{setup.size, setup.desc, setup.driver, setup.device},
                driver_features_);
        } else {
            queues_.emplace_back();
        }
    }
    active_ = true;
    device_->activate(VirtioActivation{memory_, driver_features_, queues_, *this, notify_});
    for (uint16_t queue = 0; queue < queue_count_; ++queue) {
        if (queues_[queue].fault()) {
            mark_broken(queue, *queues_[queue].fault());
            return;  // nothing to process until the driver resets the device
        }
    }
    std::vector<DeviceWorker::Source> sources;
    std::vector<uint16_t> served_here;  // queues whose notifications the worker takes
    for (uint16_t queue = 0; queue < queue_count_; ++queue) {
        if (!setup_[queue].enabled || device_->reads_notifications(queue)) {
            continue;
        }
        served_here.push_back(queue);
        sources.push_back({.fd = notify_[queue].fd(),
                           .on_readable =
                               [this, queue] {
                                   notifications_.fetch_add(notify_[queue].consume(),
                                                            std::memory_order_relaxed);
                                   if (needs_reset_) {
                                       return;
                                   }
                                   device_->process_queue(queue);
                                   check_queues();
                               },
                           .guest_notification = true});
    }
    for (DeviceWorker::Source& source : device_->worker_sources()) {
        // Run even on a broken device: the handler drains its fd. Only the
        // handler is wrapped; the source keeps what else it says of itself.
        source.on_readable = [this, handler = std::move(source.on_readable)] {
            handler();
            check_queues();
        };
        sources.push_back(std::move(source));
    }
    try {
        worker_ = std::make_unique<DeviceWorker>(name_, std::move(sources), pace_,
                                                 ring_poll(std::move(served_here)));
    } catch (const Error& error) {
        // The host is out of threads or fds: the guest sees a broken device, the VM lives.
        spdlog::error("{}: cannot start the device: {}", name_, error.what());
        needs_reset_ = true;
    }
}

DeviceWorker::RingPoll VirtioPciDevice::ring_poll(std::vector<uint16_t> queues) {
    auto notifications = [this, queues](bool enabled) {
        for (uint16_t queue : queues) {
            queues_[queue].set_notifications(enabled);
        }
    };
    auto serve = [this, queues] {
        unsigned requests = 0;
        for (uint16_t queue : queues) {
            uint16_t added = needs_reset_ ? 0 : queues_[queue].newly_available();
            if (added > 0) {
                device_->process_queue(queue);
                check_queues();
                requests += added;
            }
        }
        return requests;
    };
    return {[notifications] { notifications(false); }, serve,
            [notifications] { notifications(true); }};
}

void VirtioPciDevice::reset() {
    worker_.reset();              // joins: the worker never waits for mutex_
    used_signal_routes_.clear();  // before the device drops what they route into
    if (active_) {
        device_->reset();
        active_ = false;
    }
    queues_.clear();
    status_ = 0;
    device_feature_select_ = 0;
    driver_feature_select_ = 0;
    driver_features_ = 0;
    queue_select_ = 0;
    for (uint16_t queue = 0; queue < queue_count_; ++queue) {
        setup_[queue] = QueueSetup{};
        setup_[queue].size = device_->queue_max_size();
        queue_vectors_[queue] = virtio::kMsiNoVector;
        notify_[queue].consume();  // kicks for the old rings mean nothing now
    }
    config_vector_ = virtio::kMsiNoVector;
    isr_ = 0;
    needs_reset_ = false;
}

// ---- Notifications ----

void VirtioPciDevice::bind_notify(uint16_t queue) {
    QueueSetup& setup = setup_[queue];
    setup.binding.reset();
    if (ioevents_ == nullptr || !bar_address_ || !setup.enabled) {
        return;  // kicks arrive as MMIO writes instead
    }
    uint64_t address = *bar_address_ + kNotifyOffset + uint64_t{queue} * kNotifyOffMultiplier;
    try {
        setup.binding = ioevents_->bind_mmio(address, 2, notify_[queue]);
    } catch (const Error& error) {
        spdlog::warn("{}: queue {}: no ioeventfd at {:#x}, kicks will exit to the VMM: {}", name_,
                     queue, address, error.what());
    }
}

void VirtioPciDevice::bar_moved(uint8_t bar, std::optional<uint64_t> address) {
    if (bar != kBar) {
        return;
    }
    std::lock_guard lock(mutex_);
    bar_address_ = address;
    for (QueueSetup& setup : setup_) {
        setup.binding.reset();  // all first: the new range may overlap the old one
    }
    for (uint16_t queue = 0; queue < queue_count_; ++queue) {
        bind_notify(queue);
    }
}

// ---- Interrupts and faults (worker thread) ----

void VirtioPciDevice::signal_used(uint16_t queue) {
    if (queue >= queue_count_) {
        return;
    }
    isr_ |= virtio::kIsrQueue;
    uint16_t vector = queue_vectors_[queue];
    if (vector != virtio::kMsiNoVector) {
        msix_.signal(vector);
    }
}

void VirtioPciDevice::route_used_signals(uint16_t queue, std::function<void(int fd)> route) {
    if (queue >= queue_count_) {
        route(-1);
        return;
    }
    UsedSignalRoute& entry = used_signal_routes_[queue];
    entry.route = std::move(route);
    entry.fd = direct_fd(queue);
    entry.route(entry.fd);
}

int VirtioPciDevice::direct_fd(uint16_t queue) const {
    uint16_t vector = queue_vectors_[queue];
    return vector == virtio::kMsiNoVector ? -1 : msix_.direct_fd(vector);
}

void VirtioPciDevice::update_used_signal_routes() {
    for (auto& [queue, entry] : used_signal_routes_) {
        if (int fd = direct_fd(queue); fd != entry.fd) {
            entry.fd = fd;
            entry.route(fd);
        }
    }
}

void VirtioPciDevice::signal_config_change() {
    ++config_generation_;
    isr_ |= virtio::kIsrConfig;
    uint16_t vector = config_vector_;
    if (vector != virtio::kMsiNoVector) {
        msix_.signal(vector);
    }
}

void VirtioPciDevice::check_queues() {
    for (uint16_t queue = 0; queue < queue_count_; ++queue) {
        if (queues_[queue].fault()) {
            mark_broken(queue, *queues_[queue].fault());
            return;
        }
    }
}

void VirtioPciDevice::mark_broken(uint16_t queue, const VirtqueueFault& fault) {
    if (needs_reset_.exchange(true)) {
        return;
    }
    log_.warn("queue {}: {} ({}); device broken until the driver resets it", queue,
              to_string(fault.error), fault.detail);
    isr_ |= virtio::kIsrConfig;
    uint16_t vector = config_vector_;
    if (vector != virtio::kMsiNoVector) {
        msix_.signal(vector);
    }
}

}  // namespace vireo
