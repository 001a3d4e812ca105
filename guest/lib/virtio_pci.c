#include "virtio_pci.h"

#include "io.h"
#include "tsc.h"

#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

/* struct virtio_pci_cap: vndr, next, len, cfg_type, bar, id, pad[2], offset, length */
#define CAP_CFG_TYPE 3
#define CAP_BAR 4
#define CAP_OFFSET 8
#define CAP_NOTIFY_MULT 16

bool virtio_pci_find(uint16_t type, struct virtio_pci* v) {
    *v = (struct virtio_pci){0};
    if (!pci_find_device(VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE(type), &v->pci))
        return false;
    for (uint8_t cap = pci_find_cap(&v->pci, PCI_CAP_ID_VENDOR, 0); cap;
         cap = pci_find_cap(&v->pci, PCI_CAP_ID_VENDOR, cap)) {
        uint8_t cfg = pci_read8(&v->pci, cap + CAP_CFG_TYPE);
        uint8_t bar = pci_read8(&v->pci, cap + CAP_BAR);
        if (bar > 5 || cfg < VIRTIO_PCI_CAP_COMMON_CFG || cfg > VIRTIO_PCI_CAP_DEVICE_CFG)
            continue;
        uint64_t base = pci_bar_address(&v->pci, bar);
        if (!base || base >= (4ull << 30))
            continue; /* only the low 4 GiB are mapped */
        uint64_t addr = base + pci_read32(&v->pci, cap + CAP_OFFSET);
        switch (cfg) {
            case VIRTIO_PCI_CAP_COMMON_CFG:
                if (!v->common)
                    v->common = addr;
                break;
            case VIRTIO_PCI_CAP_NOTIFY_CFG:
                if (!v->notify) {
                    v->notify = addr;
                    v->notify_off_multiplier = pci_read32(&v->pci, cap + CAP_NOTIFY_MULT);
                }
                break;
            case VIRTIO_PCI_CAP_ISR_CFG:
                if (!v->isr)
                    v->isr = addr;
                break;
            case VIRTIO_PCI_CAP_DEVICE_CFG:
                if (!v->device_cfg)
                    v->device_cfg = addr;
                break;
        }
    }
    if (!v->common || !v->notify)
        return false;
    pci_enable_bus_master(&v->pci);
    v->has_msix = msix_init(&v->pci, &v->msix);
    return true;
}

uint8_t virtio_get_status(const struct virtio_pci* v) {
    return mmio_read8(v->common + VIRTIO_COMMON_STATUS);
}

void virtio_set_status(const struct virtio_pci* v, uint8_t status) {
    mmio_write8(v->common + VIRTIO_COMMON_STATUS, status);
}

bool virtio_reset(const struct virtio_pci* v, unsigned timeout_ms) {
    virtio_set_status(v, 0);
    uint64_t end = time_us() + timeout_ms * 1000ull;
    while (virtio_get_status(v) != 0) {
        if (time_us() > end)
            return false;
        cpu_relax();
    }
    return true;
}

bool virtio_negotiate(const struct virtio_pci* v, uint64_t wanted, uint64_t* accepted) {
    if (!virtio_reset(v, 1000))
        return false;
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint64_t offered = 0;
    for (uint32_t sel = 0; sel < 2; sel++) {
        mmio_write32(v->common + VIRTIO_COMMON_DFSELECT, sel);
        offered |= (uint64_t)mmio_read32(v->common + VIRTIO_COMMON_DF) << (32 * sel);
    }
    uint64_t features = offered & wanted;
    for (uint32_t sel = 0; sel < 2; sel++) {
        mmio_write32(v->common + VIRTIO_COMMON_GFSELECT, sel);
        mmio_write32(v->common + VIRTIO_COMMON_GF, (uint32_t)(features >> (32 * sel)));
    }
    virtio_set_status(v,
                      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (accepted)
        *accepted = features;
    return (virtio_get_status(v) & VIRTIO_STATUS_FEATURES_OK) != 0;
}

uint16_t virtio_queue_max_size(const struct virtio_pci* v, uint16_t index) {
    mmio_write16(v->common + VIRTIO_COMMON_Q_SELECT, index);
    return mmio_read16(v->common + VIRTIO_COMMON_Q_SIZE);
}

bool virtio_setup_queue(const struct virtio_pci* v, struct virtq* q, uint16_t msix_entry) {
    uint16_t max = virtio_queue_max_size(v, q->index);
    if (!max || q->size > max)
        return false;
    mmio_write16(v->common + VIRTIO_COMMON_Q_SIZE, q->size);
    mmio_write16(v->common + VIRTIO_COMMON_Q_MSIX, msix_entry);
    if (mmio_read16(v->common + VIRTIO_COMMON_Q_MSIX) != msix_entry)
        return false;
    mmio_write64(v->common + VIRTIO_COMMON_Q_DESC, (uint64_t)q->desc);
    mmio_write64(v->common + VIRTIO_COMMON_Q_AVAIL, (uint64_t)q->avail);
    mmio_write64(v->common + VIRTIO_COMMON_Q_USED, (uint64_t)q->used);
    uint16_t noff = mmio_read16(v->common + VIRTIO_COMMON_Q_NOFF);
    q->notify_addr = v->notify + (uint64_t)noff * v->notify_off_multiplier;
    mmio_write16(v->common + VIRTIO_COMMON_Q_ENABLE, 1);
    return true;
}

void virtio_driver_ok(const struct virtio_pci* v) {
    virtio_set_status(v, virtio_get_status(v) | VIRTIO_STATUS_DRIVER_OK);
}

void virtio_notify(const struct virtq* q) {
    mb();
    mmio_write16(q->notify_addr, q->index);
}
