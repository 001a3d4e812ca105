/*
 * virtio_rng: drives a virtio-rng PCI device (modern interface): negotiates
 * VIRTIO_F_VERSION_1, sets up queue 0 with an MSI-X vector, reads 4 x 64
 * bytes of entropy and checks the used ring, the bytes and the interrupts.
 */
#include "io.h"
#include "lapic.h"
#include "page_alloc.h"
#include "pci.h"
#include "printf.h"
#include "report.h"
#include "string.h"
#include "tsc.h"
#include "virtio_pci.h"

#define RNG_VECTOR 0x40
#define ROUNDS 4
#define CHUNK 64

static bool wait_used(struct virtq* q, struct virtq_used_elem* e, unsigned timeout_ms) {
    uint64_t end = time_us() + timeout_ms * 1000ull;
    while (!virtq_get_used(q, e)) {
        if (time_us() > end)
            return false;
        cpu_relax();
    }
    return true;
}

int main(void) {
    printf("Vireo guest kit: virtio_rng\n");
    printf("PCI config access: %s\n", pci_access_method());
    struct virtio_pci v;
    if (!virtio_pci_find(VIRTIO_ID_RNG, &v))
        report_abort("no virtio-rng device (1af4:1044) on bus 0");
    printf("virtio-rng at 00:%02x.%x, common cfg %#lx, notify %#lx (x%u)\n", v.pci.dev, v.pci.fn,
           v.common, v.notify, v.notify_off_multiplier);
    report(v.has_msix, "MSI-X capability with %u entries", v.has_msix ? v.msix.table_size : 0);

    uint64_t features = 0;
    report(virtio_negotiate(&v, VIRTIO_F_VERSION_1, &features) && (features & VIRTIO_F_VERSION_1),
           "negotiated VIRTIO_F_VERSION_1 (FEATURES_OK kept)");

    uint16_t max = virtio_queue_max_size(&v, 0);
    struct virtq q;
    uint16_t size = max < 16 ? max : 16;
    if (!report(max > 0 && virtq_alloc(&q, 0, size), "queue 0: device maximum %u, using %u", max,
                size))
        report_summary();
    if (v.has_msix) {
        msix_count_vector(RNG_VECTOR);
        msix_set_entry(&v.msix, 0, RNG_VECTOR, lapic_id());
        msix_enable(&v.msix);
    }
    report(virtio_setup_queue(&v, &q, v.has_msix ? 0 : VIRTIO_MSI_NO_VECTOR),
           "queue 0 set up with MSI-X entry 0");
    virtio_driver_ok(&v);
    report(virtio_get_status(&v) & VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK set, status %#x",
           virtio_get_status(&v));

    uint8_t* buf = alloc_pages(1);
    uint32_t total = 0;
    bool ids_ok = true, lens_ok = true, all_done = true;
    for (int r = 0; r < ROUNDS; r++) {
        struct virtq_buf b = {(uint64_t)(buf + r * CHUNK), CHUNK, true};
        uint16_t head = virtq_add(&q, &b, 1);
        virtio_notify(&q);
        struct virtq_used_elem e;
        if (!wait_used(&q, &e, 2000)) {
            all_done = false;
            break;
        }
        ids_ok = ids_ok && e.id == head;
        lens_ok = lens_ok && e.len > 0 && e.len <= CHUNK;
        total += e.len;
    }
    report(all_done, "%d requests completed", ROUNDS);
    report(ids_ok, "used ring returns the heads we queued");
    report(lens_ok, "used lengths within 1..%d (%u bytes in total)", CHUNK, total);

    bool nonzero = false, varied = false;
    for (int i = 0; i < ROUNDS * CHUNK; i++) {
        nonzero = nonzero || buf[i];
        varied = varied || buf[i] != buf[0];
    }
    report(nonzero && varied, "entropy bytes are neither all zero nor all identical");
    report(memcmp(buf, buf + CHUNK, CHUNK) != 0, "two requests returned different bytes");

    if (v.has_msix) {
        uint64_t end = time_us() + 1000000;
        while (msix_irq_count[RNG_VECTOR] == 0 && time_us() < end)
            cpu_relax();
        report(msix_irq_count[RNG_VECTOR] >= 1, "MSI-X interrupts: %lu on vector %#x",
               msix_irq_count[RNG_VECTOR], RNG_VECTOR);
    }
    report(virtio_reset(&v, 1000), "device reset (status reads 0)");
    report_summary();
}
