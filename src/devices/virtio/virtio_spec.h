#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

// Constants and ABI structures of the virtio 1.x specification (split
// virtqueues, device status, feature bits, PCI transport) that more than one
// file needs. Fields are little endian; Vireo runs on little-endian hosts only,
// so this is the one place that says so.
static_assert(std::endian::native == std::endian::little, "virtio structures are little endian");

namespace vireo::virtio {

// Device status field (2.1).
inline constexpr uint8_t kStatusAcknowledge = 1;
inline constexpr uint8_t kStatusDriver = 2;
inline constexpr uint8_t kStatusDriverOk = 4;
inline constexpr uint8_t kStatusFeaturesOk = 8;
inline constexpr uint8_t kStatusDeviceNeedsReset = 0x40;
inline constexpr uint8_t kStatusFailed = 0x80;

// Reserved feature bits (6).
inline constexpr int kFeatureIndirectDesc = 28;
inline constexpr int kFeatureEventIdx = 29;
inline constexpr int kFeatureVersion1 = 32;

// Split virtqueue (2.7).
inline constexpr uint16_t kMaxQueueSize = 32768;
inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;
inline constexpr uint16_t kUsedFlagNoNotify = 1;

struct VirtqDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);
static_assert(offsetof(VirtqDesc, addr) == 0 && offsetof(VirtqDesc, len) == 8 &&
              offsetof(VirtqDesc, flags) == 12 && offsetof(VirtqDesc, next) == 14);

struct VirtqUsedElem {
    uint32_t id;
    uint32_t len;
};
static_assert(sizeof(VirtqUsedElem) == 8);
static_assert(offsetof(VirtqUsedElem, id) == 0 && offsetof(VirtqUsedElem, len) == 4);

// struct virtq_avail { le16 flags; le16 idx; le16 ring[size]; le16 used_event; }
inline constexpr uint64_t kAvailFlagsOffset = 0;
inline constexpr uint64_t kAvailIdxOffset = 2;
inline constexpr uint64_t kAvailRingOffset = 4;
inline constexpr uint64_t avail_ring_size(uint16_t queue_size) {
    return 6 + 2 * uint64_t{queue_size};
}
inline constexpr uint64_t used_event_offset(uint16_t queue_size) {
    return 4 + 2 * uint64_t{queue_size};
}
// struct virtq_used { le16 flags; le16 idx; virtq_used_elem ring[size]; le16 avail_event; }
inline constexpr uint64_t kUsedFlagsOffset = 0;
inline constexpr uint64_t kUsedIdxOffset = 2;
inline constexpr uint64_t kUsedRingOffset = 4;
inline constexpr uint64_t used_ring_size(uint16_t queue_size) {
    return 6 + 8 * uint64_t{queue_size};
}
inline constexpr uint64_t avail_event_offset(uint16_t queue_size) {
    return 4 + 8 * uint64_t{queue_size};
}
// Alignment of the three parts (2.7, table "Virtqueue Part / Alignment").
inline constexpr uint64_t kDescTableAlign = 16;
inline constexpr uint64_t kAvailRingAlign = 2;
inline constexpr uint64_t kUsedRingAlign = 4;

// Device types (5).
inline constexpr uint32_t kDeviceNet = 1;
inline constexpr uint32_t kDeviceBlock = 2;
inline constexpr uint32_t kDeviceConsole = 3;
inline constexpr uint32_t kDeviceEntropy = 4;
inline constexpr uint32_t kDeviceBalloon = 5;

}  // namespace vireo::virtio

namespace vireo::virtio {

// Virtio over PCI (4.1).
inline constexpr uint16_t kPciVendorId = 0x1af4;
inline constexpr uint16_t kPciDeviceIdBase = 0x1040;  // + device type, non-transitional
inline constexpr uint8_t kPciCapCommonCfg = 1;
inline constexpr uint8_t kPciCapNotifyCfg = 2;
inline constexpr uint8_t kPciCapIsrCfg = 3;
inline constexpr uint8_t kPciCapDeviceCfg = 4;
inline constexpr uint8_t kPciCapPciCfg = 5;
inline constexpr uint16_t kMsiNoVector = 0xffff;
inline constexpr uint8_t kIsrQueue = 1;
inline constexpr uint8_t kIsrConfig = 2;

struct PciCap {
    uint8_t cap_vndr;
    uint8_t cap_next;
    uint8_t cap_len;
    uint8_t cfg_type;
    uint8_t bar;
    uint8_t id;
    uint8_t padding[2];
    uint32_t offset;
    uint32_t length;
};
static_assert(sizeof(PciCap) == 16);
static_assert(offsetof(PciCap, cfg_type) == 3 && offsetof(PciCap, bar) == 4 &&
              offsetof(PciCap, offset) == 8 && offsetof(PciCap, length) == 12);

struct PciNotifyCap {
    PciCap cap;
    uint32_t notify_off_multiplier;
};
static_assert(sizeof(PciNotifyCap) == 20 && offsetof(PciNotifyCap, notify_off_multiplier) == 16);

struct PciCfgCap {
    PciCap cap;
    uint8_t pci_cfg_data[4];
};
static_assert(sizeof(PciCfgCap) == 20 && offsetof(PciCfgCap, pci_cfg_data) == 16);

// struct virtio_pci_common_cfg, up to queue_device (virtio 1.1). The 1.2
// additions (queue_notify_data, queue_reset, admin queues) belong to features
// Vireo does not offer and read as 0.
struct PciCommonCfg {
    uint32_t device_feature_select;
    uint32_t device_feature;
    uint32_t driver_feature_select;
    uint32_t driver_feature;
    uint16_t config_msix_vector;
    uint16_t num_queues;
    uint8_t device_status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint16_t queue_size;
    uint16_t queue_msix_vector;
    uint16_t queue_enable;
    uint16_t queue_notify_off;
    uint64_t queue_desc;
    uint64_t queue_driver;
    uint64_t queue_device;
};
static_assert(sizeof(PciCommonCfg) == 56);
static_assert(
    offsetof(PciCommonCfg, device_feature) == 4 &&
    offsetof(PciCommonCfg, driver_feature_select) == 8 &&
    offsetof(PciCommonCfg, driver_feature) == 12 &&
    offsetof(PciCommonCfg, config_msix_vector) == 16 && offsetof(PciCommonCfg, num_queues) == 18 &&
    offsetof(PciCommonCfg, device_status) == 20 &&
    offsetof(PciCommonCfg, config_generation) == 21 && offsetof(PciCommonCfg, queue_select) == 22 &&
    offsetof(PciCommonCfg, queue_size) == 24 && offsetof(PciCommonCfg, queue_msix_vector) == 26 &&
    offsetof(PciCommonCfg, queue_enable) == 28 && offsetof(PciCommonCfg, queue_notify_off) == 30 &&
    offsetof(PciCommonCfg, queue_desc) == 32 && offsetof(PciCommonCfg, queue_driver) == 40 &&
    offsetof(PciCommonCfg, queue_device) == 48);

}  // namespace vireo::virtio
