/*
 * virtio_hostile: sends malformed virtqueue chains to virtio-rng, one at a
 * time, and after each expects the device to set DEVICE_NEEDS_RESET (0x40),
 * then resets it, re-initialises it and proves it works again.
 *
 *   vireo.hostile_expect=broken  (default, Vireo) every case must set NEEDS_RESET
 *   vireo.hostile_expect=chains  only the malformed-chain cases must (QEMU: it
 *                                drops a buffer outside RAM without an error)
 *   vireo.hostile_expect=any     only require that the device recovers after
 *                                a reset
 */
#include "cmdline.h"
#include "io.h"
#include "page_alloc.h"
#include "printf.h"
#include "report.h"
#include "string.h"
#include "tsc.h"
#include "virtio_pci.h"

#define QSIZE 8
#define OUTSIDE_RAM (1ull << 46) /* 64 TiB: beyond any test VM's RAM */

static struct virtio_pci v;
static struct virtq q;
static uint8_t* buf;
enum expectation { EXPECT_BROKEN, EXPECT_CHAINS, EXPECT_ANY };
static enum expectation expect = EXPECT_BROKEN;

static bool init_device(void) {
    uint64_t f;
    if (!virtio_negotiate(&v, VIRTIO_F_VERSION_1, &f))
        return false;
    virtq_reset(&q);
    memset(q.desc, 0, sizeof(struct virtq_desc) * QSIZE);
    if (!virtio_setup_queue(&v, &q, VIRTIO_MSI_NO_VECTOR))
        return false;
    virtio_driver_ok(&v);
    return (virtio_get_status(&v) & VIRTIO_STATUS_DRIVER_OK) != 0;
}

/* One good 64-byte request completes. */
static bool works(void) {
    struct virtq_buf b = {(uint64_t)buf, 64, true};
    uint16_t head = virtq_add(&q, &b, 1);
    virtio_notify(&q);
    uint64_t end = time_us() + 2000000;
    struct virtq_used_elem e;
    while (!virtq_get_used(&q, &e)) {
        if (time_us() > end)
            return false;
        cpu_relax();
    }
    return e.id == head && e.len > 0 && e.len <= 64;
}

static bool wait_needs_reset(unsigned timeout_ms) {
    uint64_t end = time_us() + timeout_ms * 1000ull;
    while (!(virtio_get_status(&v) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) {
        if (time_us() > end)
            return false;
        cpu_relax();
    }
    return true;
}

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    q.desc[i] = (struct virtq_desc){addr, len, flags, next};
}

static void bad_address(void) {
    desc(0, OUTSIDE_RAM, 64, VIRTQ_DESC_F_WRITE, 0);
    virtq_publish(&q, 0);
}

static void loop_chain(void) {
    desc(0, (uint64_t)buf, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    desc(1, (uint64_t)buf + 16, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
    virtq_publish(&q, 0);
}

/* Every descriptor chained, the last one pointing back to the head: a chain
 * longer than the queue. */
static void overlong_chain(void) {
    for (uint16_t i = 0; i < QSIZE; i++)
        desc(i, (uint64_t)buf + 8 * i, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
             (uint16_t)((i + 1) % QSIZE));
    virtq_publish(&q, 0);
}

static void next_out_of_range(void) {
    desc(0, (uint64_t)buf, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, QSIZE + 3);
    virtq_publish(&q, 0);
}

static void avail_far_ahead(void) {
    desc(0, (uint64_t)buf, 16, VIRTQ_DESC_F_WRITE, 0);
    for (int i = 0; i < QSIZE; i++)
        q.avail->ring[i] = 0;
    mb();
    q.avail->idx = (uint16_t)(q.avail->idx + QSIZE + 100);
    mb();
}

struct hostile_case {
    const char* name;
    void (*send)(void);
    bool malformed_chain; /* broken ring structure, not just a bad buffer */
};

static const struct hostile_case cases[] = {
    {"descriptor address outside guest RAM", bad_address, false},
    {"descriptor loop (1 -> 0 -> 1)", loop_chain, true},
    {"chain longer than the queue size", overlong_chain, true},
    {"next index beyond the queue size", next_out_of_range, true},
    {"avail index far ahead of the last one", avail_far_ahead, true},
};

int main(void) {
    printf("Vireo guest kit: virtio_hostile\n");
    char mode[16] = "broken";
    cmdline_get("vireo.hostile_expect", mode, sizeof(mode));
    if (!strcmp(mode, "chains"))
        expect = EXPECT_CHAINS;
    else if (!strcmp(mode, "any"))
        expect = EXPECT_ANY;
    else if (strcmp(mode, "broken"))
        report_abort("vireo.hostile_expect=%s: use broken, chains or any", mode);
    if (!virtio_pci_find(VIRTIO_ID_RNG, &v))
        report_abort("no virtio-rng device (1af4:1044) on bus 0");
    if (virtio_queue_max_size(&v, 0) < QSIZE)
        report_abort("queue 0 smaller than %d", QSIZE);
    buf = alloc_pages(1);
    if (!virtq_alloc(&q, 0, QSIZE))
        report_abort("out of memory");
    if (!report(init_device() && works(), "device works before the hostile requests"))
        report_summary();

    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct hostile_case* c = &cases[i];
        c->send();
        virtio_notify(&q);
        bool broken = wait_needs_reset(1000);
        printf("  %s: status %#x\n", c->name, virtio_get_status(&v));
        if (expect == EXPECT_BROKEN || (expect == EXPECT_CHAINS && c->malformed_chain))
            report(broken, "%s: device sets DEVICE_NEEDS_RESET", c->name);
        else
            report_info("%s: DEVICE_NEEDS_RESET %s", c->name, broken ? "set" : "not set");
        report(virtio_reset(&v, 1000), "%s: reset completes (status reads 0)", c->name);
        report(init_device() && works(), "%s: device works again after re-initialisation", c->name);
    }
    report_summary();
}
