/* virtio 1.x PCI transport, modern interface only (virtio spec 4.1). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "msix.h"
#include "pci.h"
#include "virtqueue.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE(type) (0x1040 + (type))
#define VIRTIO_ID_RNG 4

#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_F_EVENT_IDX (1ull << 29)
#define VIRTIO_F_VERSION_1 (1ull << 32)
#define VIRTIO_MSI_NO_VECTOR 0xffff

/* common configuration structure offsets */
#define VIRTIO_COMMON_DFSELECT 0
#define VIRTIO_COMMON_DF 4
#define VIRTIO_COMMON_GFSELECT 8
#define VIRTIO_COMMON_GF 12
#define VIRTIO_COMMON_MSIX 16
#define VIRTIO_COMMON_NUMQ 18
#define VIRTIO_COMMON_STATUS 20
#define VIRTIO_COMMON_CFGGEN 21
#define VIRTIO_COMMON_Q_SELECT 22
#define VIRTIO_COMMON_Q_SIZE 24
#define VIRTIO_COMMON_Q_MSIX 26
#define VIRTIO_COMMON_Q_ENABLE 28
#define VIRTIO_COMMON_Q_NOFF 30
#define VIRTIO_COMMON_Q_DESC 32
#define VIRTIO_COMMON_Q_AVAIL 40
#define VIRTIO_COMMON_Q_USED 48

struct virtio_pci {
    struct pci_dev pci;
    uint64_t common; /* common configuration */
    uint64_t notify; /* notification area base */
    uint32_t notify_off_multiplier;
    uint64_t isr;
    uint64_t device_cfg; /* 0 if the device has none */
    struct msix msix;
    bool has_msix;
};

/* Finds the device of virtio `type` on bus 0, maps its capabilities (assigning
 * BARs if needed), enables bus mastering and looks up MSI-X. */
bool virtio_pci_find(uint16_t type, struct virtio_pci* v);

uint8_t virtio_get_status(const struct virtio_pci* v);
void virtio_set_status(const struct virtio_pci* v, uint8_t status);
/* Writes 0 to device_status and waits (up to timeout_ms) until it reads 0. */
bool virtio_reset(const struct virtio_pci* v, unsigned timeout_ms);
/* reset, ACKNOWLEDGE, DRIVER, features (offered & wanted), FEATURES_OK, and
 * checks the device kept FEATURES_OK. *accepted gets the negotiated set. */
bool virtio_negotiate(const struct virtio_pci* v, uint64_t wanted, uint64_t* accepted);
/* Selects queue q->index, sets size (<= device maximum), MSI-X entry
 * (VIRTIO_MSI_NO_VECTOR for none), ring addresses; enables it. */
bool virtio_setup_queue(const struct virtio_pci* v, struct virtq* q, uint16_t msix_entry);
uint16_t virtio_queue_max_size(const struct virtio_pci* v, uint16_t index);
void virtio_driver_ok(const struct virtio_pci* v);
void virtio_notify(const struct virtq* q);
