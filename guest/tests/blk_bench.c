/*
 * blk_bench: the I/O loop of a virtio-blk driver, timed with the TSC, for
 * comparing VMMs on the same image (bench/disk_bench.py). Drives the first
 * virtio-blk PCI device (1af4:1042) through queue 0, polling the used ring
 * with interrupts suppressed (VIRTQ_AVAIL_F_NO_INTERRUPT, no MSI-X vector),
 * so a figure is the cost of notify -> device -> used ring, not of interrupt
 * delivery. Each request is one chain of three descriptors (header, data,
 * status) in a fixed slot; with depth D, D slots are kept in flight and
 * every refill of the slots that came back costs one notify, skipped when
 * the device says it needs none: VIRTQ_USED_F_NO_NOTIFY, or with
 * bench.event_idx=1 the avail_event index of VIRTIO_F_EVENT_IDX (what Linux
 * negotiates); then used_event is kept half a ring ahead so that no
 * interrupt is asked for.
 *
 * Tests, at depth 1 and then at bench.depth if that is more than 1:
 *   read   bench.count sequential requests of bench.size bytes from sector 0;
 *          every buffer's first and last bytes must be bench.fill (the image's
 *          byte, 0xa5 by default)
 *   write  bench.count sequential requests just past the read region (so the
 *          image keeps its fill where reads look), then one untimed flush
 * With bench.random=1 the requests visit their region's request-sized blocks
 * in a scattered order instead: block k*40503 mod bench.count for request k
 * (every block once when bench.count is a power of two), as the host-side
 * benchmark's step does.
 *
 * Command line:
 *   bench.count=N   requests per test (default 2048)
 *   bench.size=B    bytes per request, a multiple of 512 (default 4096)
 *   bench.depth=D   the deeper queue depth (default 32; 1 runs depth 1 only)
 *   bench.fill=0xNN the image's byte in the read region (default 0xa5)
 *   bench.warmup=N  untimed requests before each test (default 32)
 *   bench.event_idx=1  negotiate VIRTIO_F_EVENT_IDX (the device must offer it)
 *   bench.random=1  scattered offsets (see above)
 *
 * Output, one per test and figure (<rand_> only with bench.random=1):
 *   BENCH blk_<read|write>_<size>k_<rand_>qd<depth>_iops=<n>
 *   BENCH blk_<read|write>_<size>k_qd<depth>_mibps_x10=<n>   MiB/s x 10
 *   BENCH blk_<read|write>_<size>k_qd<depth>_lat_ns=<n>      mean ns per request
 *   BENCH blk_<read|write>_<size>k_qd<depth>_kicks=<n>       notifications sent
 * and BENCH tsc_khz=<n>. Without a known TSC frequency the test fails.
 */
#include "cmdline.h"
#include "io.h"
#include "page_alloc.h"
#include "printf.h"
#include "report.h"
#include "string.h"
#include "tsc.h"
#include "virtio_pci.h"

#define VIRTIO_ID_BLOCK 2
#define SECTOR 512
#define MAX_DEPTH 64
#define DESC_PER_REQUEST 3
#define MAX_BUFFER_BYTES (1u << 20) /* of the 2 MiB page arena */
#define TIMEOUT_US 10000000ull      /* one request, 10 s */
#define RANDOM_STRIDE 40503         /* odd: a permutation of any power-of-two count */

#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK 0
#define NO_STATUS 0xff

struct blk_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

/* Slot i owns descriptors 3i..3i+2 and its header, status byte and buffer. */
struct slot {
    struct blk_header* header;
    volatile uint8_t* status;
    uint8_t* data;
};

static struct virtio_pci dev;
static struct virtq q;
static struct slot slots[MAX_DEPTH];
static uint64_t capacity; /* sectors */
static uint64_t count, size, max_depth, warmup;
static uint8_t fill;
static uint64_t bad_status, bad_data;
static uint64_t kicks; /* notifications sent (not skipped as the device asked) */
static bool event_idx;
static bool random_order;

static void notify(void) {
    if (virtq_kick_needed(&q, event_idx)) {
        virtio_notify(&q);
        kicks++;
    }
}

static void submit(unsigned i, uint32_t type, uint64_t sector) {
    struct slot* s = &slots[i];
    s->header->type = type;
    s->header->sector = sector;
    *s->status = NO_STATUS;
    uint16_t head = (uint16_t)(i * DESC_PER_REQUEST);
    q.desc[head + 1].flags = VIRTQ_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0);
    virtq_publish(&q, head);
}

/* Waits for one used element; returns its slot, or -1 after TIMEOUT_US. */
static int reap(void) {
    struct virtq_used_elem e;
    if (!virtq_poll_used(&q, &e, event_idx, TIMEOUT_US))
        return -1;
    unsigned i = e.id / DESC_PER_REQUEST;
    if (e.id % DESC_PER_REQUEST || i >= max_depth)
        report_abort("used ring returned head %u, not one of ours", e.id);
    return (int)i;
}

static void check(unsigned i, bool reading) {
    if (*slots[i].status != VIRTIO_BLK_S_OK)
        bad_status++;
    else if (reading && (slots[i].data[0] != fill || slots[i].data[size - 1] != fill))
        bad_data++;
}

/* The first sector of request k in a region starting at `first_sector`. */
static uint64_t sector_of(uint64_t first_sector, uint64_t k) {
    uint64_t block = random_order ? k * RANDOM_STRIDE % count : k;
    return first_sector + block * (size / SECTOR);
}

/* `n` requests of `type` at depth `depth` in the region from `first_sector`;
 * returns the TSC cycles they took (0 on a timeout). */
static uint64_t run(uint32_t type, uint64_t first_sector, uint64_t n, unsigned depth) {
    uint64_t issued = 0, done = 0;
    bool reading = type == VIRTIO_BLK_T_IN;
    uint64_t t0 = rdtsc();
    for (unsigned i = 0; i < depth && issued < n; i++, issued++)
        submit(i, type, sector_of(first_sector, issued));
    notify();
    while (done < n) {
        int i = reap();
        if (i < 0)
            return 0;
        /* Take everything already back before the next kick, as a driver's
         * interrupt handler would. */
        bool refilled = false;
        for (;;) {
            check((unsigned)i, reading);
            done++;
            if (issued < n) {
                submit((unsigned)i, type, sector_of(first_sector, issued));
                issued++;
                refilled = true;
            }
            if (*(volatile uint16_t*)&q.used->idx == q.last_used)
                break;
            i = reap();
        }
        if (refilled)
            notify();
    }
    return rdtsc() - t0;
}

static void bench(const char* op, uint32_t type, uint64_t first_sector, unsigned depth) {
    char name[64];
    snprintf(name, sizeof(name), "blk_%s_%luk_%sqd%u", op, size / 1024, random_order ? "rand_" : "",
             depth);
    if (warmup)
        run(type, first_sector, warmup < count ? warmup : count, depth);
    bad_status = bad_data = kicks = 0;
    uint64_t cycles = run(type, first_sector, count, depth);
    if (!report(cycles > 0, "%s: %lu requests completed", name, count))
        return;
    report(bad_status == 0, "%s: %lu requests with a status other than OK", name, bad_status);
    if (type == VIRTIO_BLK_T_IN)
        report(bad_data == 0, "%s: %lu buffers not filled with %#x", name, bad_data, fill);
    uint64_t ns = cycles_to_ns(cycles);
    if (!ns)
        ns = 1;
    /* No 128-bit division here (no libgcc): KiB first keeps the products in 64 bits. */
    uint64_t iops = count * 1000000000ull / ns;
    uint64_t mibps_x10 = count * size / 1024 * 10 * 1000000000ull / ns / 1024;
    printf("BENCH %s_iops=%lu\n", name, iops);
    printf("BENCH %s_mibps_x10=%lu\n", name, mibps_x10);
    printf("BENCH %s_lat_ns=%lu\n", name, ns / count);
    printf("BENCH %s_kicks=%lu\n", name, kicks);
}

static bool setup(void) {
    uint64_t wanted =
        VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH;
    if (event_idx)
        wanted |= VIRTIO_F_EVENT_IDX;
    uint64_t features;
    if (!report(virtio_negotiate(&dev, wanted, &features), "features negotiated"))
        return false;
    if (event_idx && !report(features & VIRTIO_F_EVENT_IDX, "VIRTIO_F_EVENT_IDX negotiated"))
        return false;
    uint16_t qsize = 1;
    while (qsize < max_depth * DESC_PER_REQUEST)
        qsize = (uint16_t)(qsize * 2);
    if (!report(virtio_queue_max_size(&dev, 0) >= qsize, "queue 0 holds %u descriptors", qsize))
        return false;
    if (!virtq_alloc(&q, 0, qsize))
        report_abort("out of memory for the rings");
    if (!report(virtio_setup_queue(&dev, &q, VIRTIO_MSI_NO_VECTOR),
                "queue 0 set up, no MSI-X vector"))
        return false;
    q.avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT; /* ignored with EVENT_IDX: used_event instead */
    if (event_idx)
        *virtq_used_event(&q) = 0x7fff;
    virtio_driver_ok(&dev);
    if (!report(virtio_get_status(&dev) & VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK"))
        return false;
    capacity = mmio_read32(dev.device_cfg) | (uint64_t)mmio_read32(dev.device_cfg + 4) << 32;
    return true;
}

static void build_slots(void) {
    uint8_t* meta = alloc_pages(1);
    uint8_t* data = alloc_pages((max_depth * size + PAGE_SIZE - 1) / PAGE_SIZE);
    if (!meta || !data)
        report_abort("out of memory for %lu buffers of %lu bytes", max_depth, size);
    for (unsigned i = 0; i < max_depth; i++) {
        struct slot* s = &slots[i];
        s->header = (struct blk_header*)(meta + i * 64);
        s->status = meta + i * 64 + 32;
        s->data = data + i * size;
        uint16_t d = (uint16_t)(i * DESC_PER_REQUEST);
        q.desc[d] = (struct virtq_desc){(uint64_t)s->header, sizeof(struct blk_header),
                                        VIRTQ_DESC_F_NEXT, (uint16_t)(d + 1)};
        q.desc[d + 1] = (struct virtq_desc){(uint64_t)s->data, (uint32_t)size, VIRTQ_DESC_F_NEXT,
                                            (uint16_t)(d + 2)};
        q.desc[d + 2] = (struct virtq_desc){(uint64_t)s->status, 1, VIRTQ_DESC_F_WRITE, 0};
        memset(s->data, fill ^ 0xff, size); /* what the writes store */
    }
}

static void flush(void) {
    struct slot* s = &slots[0];
    s->header->type = VIRTIO_BLK_T_FLUSH;
    s->header->sector = 0;
    *s->status = NO_STATUS;
    q.desc[0].flags = VIRTQ_DESC_F_NEXT;
    q.desc[0].next = 2; /* header and status only */
    virtq_publish(&q, 0);
    notify();
    int i = reap();
    report(i == 0 && *s->status == VIRTIO_BLK_S_OK, "flush after the writes");
    q.desc[0].next = 1;
}

int main(void) {
    printf("Vireo guest kit: blk_bench\n");
    count = cmdline_u64("bench.count", 2048);
    size = cmdline_u64("bench.size", 4096);
    max_depth = cmdline_u64("bench.depth", 32);
    fill = (uint8_t)cmdline_u64("bench.fill", 0xa5);
    warmup = cmdline_u64("bench.warmup", 32);
    event_idx = cmdline_u64("bench.event_idx", 0) != 0;
    random_order = cmdline_u64("bench.random", 0) != 0;
    if (!count || !size || size % SECTOR || size > 0xffffffffull)
        report_abort("bench.count %lu, bench.size %lu: need a count and a multiple of 512", count,
                     size);
    if (!max_depth || max_depth > MAX_DEPTH || max_depth * size > MAX_BUFFER_BYTES)
        report_abort("bench.depth %lu: 1 to %d, with depth x size at most %u bytes", max_depth,
                     MAX_DEPTH, MAX_BUFFER_BYTES);
    printf("BENCH tsc_khz=%lu\n", tsc_khz());
    if (!report(tsc_khz() != 0, "TSC frequency known (%s)", tsc_khz_source()))
        report_summary();
    if (!virtio_pci_find(VIRTIO_ID_BLOCK, &dev))
        report_abort("no virtio-blk device (1af4:1042) on bus 0");
    if (!setup())
        report_summary();
    uint64_t region = count * (size / SECTOR);
    if (!report(capacity >= 2 * region, "capacity %lu sectors holds 2 x %lu", capacity, region))
        report_summary();
    build_slots();

    unsigned depths[2] = {1, (unsigned)max_depth};
    for (unsigned d = 0; d < (max_depth > 1 ? 2u : 1u); d++) {
        bench("read", VIRTIO_BLK_T_IN, 0, depths[d]);
        bench("write", VIRTIO_BLK_T_OUT, region, depths[d]);
        flush();
    }
    report_summary();
}
