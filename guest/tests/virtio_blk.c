/*
 * virtio_blk: drives every virtio-blk PCI device (1af4:1042, modern
 * interface) on bus 0, in slot order (disk 0 is the first). For each disk:
 * negotiates, checks capacity, serial and the features a read-only or
 * writable disk offers, and with MSI-X on:
 *
 *   writable disk: writes the ranges below (one descriptor; eight; data split
 *   at odd offsets), flushes, reads them back; write-zeroes (with and without
 *   unmap, and two segments in one request) and discard, checking zeroes where
 *   the spec promises them; then the bad requests: a read at the capacity, a
 *   write straddling the end (IOERR, last sector unchanged), an unknown type
 *   (UNSUPP), and a data descriptor outside guest RAM (DEVICE_NEEDS_RESET,
 *   then reset, re-initialise, and a read works again).
 *   read-only disk: reads; a write gets IOERR and changes nothing.
 *
 * The host checks the image afterwards (tests/integration/disk_test.py), so
 * the layout is fixed, in 512-byte sectors:
 *
 *   0-7     0xa1  one 4 KiB descriptor
 *   16-23   0xb0 + (sector - 16)  eight 512-byte descriptors
 *   32-35   0xc3  three descriptors of 100, 924 and 1024 bytes
 *   64-71   0xd4, then discarded (zero only with vireo.diskN_discard_zeroes=1)
 *   80-87   0xe5, then write-zeroes
 *   96-103  0xe6, then write-zeroes with unmap
 *   120-135 0x99, then write-zeroes of 120-123 and 130-133 in one request
 *   last    0xf7
 *   anything else: untouched (vireo.diskN_fill=0xNN: reads as that byte)
 *
 * Command line, N the disk index:
 *   vireo.disks=N                    how many disks to expect
 *   vireo.diskN_sectors=S            capacity in 512-byte sectors
 *   vireo.diskN_serial=STR           the GET_ID string
 *   vireo.diskN_readonly=1           the disk is read-only (VIRTIO_BLK_F_RO)
 *   vireo.diskN_fill=0xNN            the image's bytes outside the ranges above
 *   vireo.diskN_discard_zeroes=1     discarded sectors must read as zeroes
 *   vireo.blk_peer=qemu              QEMU's choices pass too: DISCARD and WRITE_ZEROES
 *                                    offered on a read-only disk, a buffer outside
 *                                    RAM dropped without DEVICE_NEEDS_RESET
 */
#include "cmdline.h"
#include "io.h"
#include "lapic.h"
#include "page_alloc.h"
#include "pci.h"
#include "printf.h"
#include "report.h"
#include "string.h"
#include "tsc.h"
#include "virtio_pci.h"

#define VIRTIO_ID_BLOCK 2
#define MAX_DISKS 16
#define QSIZE 32
#define VECTOR_BASE 0x50
#define OUTSIDE_RAM (1ull << 46) /* 64 TiB: beyond any test VM's RAM */
#define SECTOR 512
#define MIN_SECTORS 256

#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VIRTIO_BLK_F_DISCARD (1ull << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ull << 14)

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define NO_STATUS 0xff /* what the status byte holds until the device writes it */
#define TIMED_OUT -1

/* struct virtio_blk_config offsets */
#define CFG_CAPACITY 0
#define CFG_SEG_MAX 12
#define CFG_BLK_SIZE 20
#define CFG_MAX_DISCARD_SECTORS 36
#define CFG_MAX_DISCARD_SEG 40
#define CFG_MAX_WRITE_ZEROES_SECTORS 48
#define CFG_MAX_WRITE_ZEROES_SEG 52

struct blk_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct blk_segment {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags; /* bit 0: unmap */
};

struct disk {
    int index;
    struct virtio_pci v;
    struct virtq q;
    uint64_t features;
    uint64_t capacity;
    bool readonly;
    struct blk_header* header;
    struct blk_segment* segments;
    volatile uint8_t* status;
    uint8_t* out; /* 2 pages of data to write */
    uint8_t* in;  /* 2 pages to read into */
};

static struct disk disks[MAX_DISKS];
static int disk_count;
static bool peer_qemu;

/* The capabilities of the virtio device at `d` (the lib's virtio_pci_find
 * stops at the first device of a type; a VM has several disks). */
static bool probe(const struct pci_dev* d, struct virtio_pci* v) {
    *v = (struct virtio_pci){0};
    v->pci = *d;
    for (uint8_t cap = pci_find_cap(d, PCI_CAP_ID_VENDOR, 0); cap;
         cap = pci_find_cap(d, PCI_CAP_ID_VENDOR, cap)) {
        uint8_t type = pci_read8(d, cap + 3);
        uint8_t bar = pci_read8(d, cap + 4);
        if (bar > 5 || type < 1 || type > 4)
            continue;
        uint64_t base = pci_bar_address(d, bar);
        if (!base || base >= (4ull << 30))
            continue;
        uint64_t addr = base + pci_read32(d, cap + 8);
        if (type == 1 && !v->common)
            v->common = addr;
        if (type == 2 && !v->notify) {
            v->notify = addr;
            v->notify_off_multiplier = pci_read32(d, cap + 16);
        }
        if (type == 3 && !v->isr)
            v->isr = addr;
        if (type == 4 && !v->device_cfg)
            v->device_cfg = addr;
    }
    if (!v->common || !v->notify || !v->device_cfg)
        return false;
    pci_enable_bus_master(d);
    v->has_msix = msix_init(d, &v->msix);
    return true;
}

static void find_disks(void) {
    for (unsigned dev = 0; dev < 32 && disk_count < MAX_DISKS; dev++) {
        struct pci_dev d = {0, (uint8_t)dev, 0, 0, 0};
        uint32_t id = pci_read32(&d, PCI_VENDOR_ID);
        if ((uint16_t)id != VIRTIO_PCI_VENDOR ||
            (uint16_t)(id >> 16) != VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK))
            continue;
        d.vendor = (uint16_t)id;
        d.device = (uint16_t)(id >> 16);
        struct disk* k = &disks[disk_count];
        k->index = disk_count;
        if (!probe(&d, &k->v)) {
            report(false, "disk at 00:%02x.0: virtio capabilities incomplete", dev);
            continue;
        }
        disk_count++;
    }
}

/* Per-disk command line values. */
static uint64_t disk_u64(int index, const char* what, uint64_t fallback) {
    char key[48];
    snprintf(key, sizeof(key), "vireo.disk%d_%s", index, what);
    return cmdline_u64(key, fallback);
}
static bool disk_str(int index, const char* what, char* buf, size_t size) {
    char key[48];
    snprintf(key, sizeof(key), "vireo.disk%d_%s", index, what);
    return cmdline_get(key, buf, size);
}

static bool setup(struct disk* k) {
    uint64_t wanted = VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_RO |
                      VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD |
                      VIRTIO_BLK_F_WRITE_ZEROES;
    if (!virtio_negotiate(&k->v, wanted, &k->features))
        return false;
    virtq_reset(&k->q);
    memset(k->q.desc, 0, sizeof(struct virtq_desc) * QSIZE);
    if (!virtio_setup_queue(&k->v, &k->q, k->v.has_msix ? 0 : VIRTIO_MSI_NO_VECTOR))
        return false;
    virtio_driver_ok(&k->v);
    return (virtio_get_status(&k->v) & VIRTIO_STATUS_DRIVER_OK) != 0;
}

/* Sends header + data + status as one chain and waits for it; returns the
 * status byte, or TIMED_OUT. */
static int request_within(struct disk* k, uint32_t type, uint64_t sector,
                          const struct virtq_buf* data, unsigned n, unsigned timeout_ms) {
    struct virtq_buf bufs[16];
    if (n + 2 > sizeof(bufs) / sizeof(bufs[0]))
        return TIMED_OUT;
    k->header->type = type;
    k->header->reserved = 0;
    k->header->sector = sector;
    *k->status = NO_STATUS;
    bufs[0] = (struct virtq_buf){(uint64_t)k->header, sizeof(struct blk_header), false};
    for (unsigned i = 0; i < n; i++)
        bufs[i + 1] = data[i];
    bufs[n + 1] = (struct virtq_buf){(uint64_t)k->status, 1, true};
    uint16_t head = virtq_add(&k->q, bufs, n + 2);
    virtio_notify(&k->q);
    uint64_t end = time_us() + timeout_ms * 1000ull;
    struct virtq_used_elem e;
    while (!virtq_get_used(&k->q, &e)) {
        if (time_us() > end || (virtio_get_status(&k->v) & VIRTIO_STATUS_DEVICE_NEEDS_RESET))
            return TIMED_OUT;
        cpu_relax();
    }
    if (e.id != head)
        report(false, "disk%d: used ring returned head %u, queued %u", k->index, e.id, head);
    return *k->status;
}

static int request(struct disk* k, uint32_t type, uint64_t sector, const struct virtq_buf* data,
                   unsigned n) {
    return request_within(k, type, sector, data, n, 5000);
}

static int one(struct disk* k, uint32_t type, uint64_t sector, void* data, uint32_t len,
               bool device_writes) {
    struct virtq_buf b = {(uint64_t)data, len, device_writes};
    return request(k, type, sector, &b, len ? 1 : 0);
}

static int write_fill(struct disk* k, uint64_t sector, uint32_t sectors, uint8_t value) {
    memset(k->out, value, sectors * SECTOR);
    return one(k, VIRTIO_BLK_T_OUT, sector, k->out, sectors * SECTOR, false);
}

/* Reads `sectors` at `sector` and checks every byte is `value`. */
static bool reads_as(struct disk* k, uint64_t sector, uint32_t sectors, uint8_t value) {
    memset(k->in, value ^ 0x5a, sectors * SECTOR);
    if (one(k, VIRTIO_BLK_T_IN, sector, k->in, sectors * SECTOR, true) != VIRTIO_BLK_S_OK)
        return false;
    for (uint32_t i = 0; i < sectors * SECTOR; i++) {
        if (k->in[i] != value) {
            printf("  disk%d sector %lu byte %u: %#x, expected %#x\n", k->index,
                   sector + i / SECTOR, i % SECTOR, k->in[i], value);
            return false;
        }
    }
    return true;
}

static int segments(struct disk* k, uint32_t type, unsigned count) {
    struct virtq_buf b = {(uint64_t)k->segments, count * (uint32_t)sizeof(struct blk_segment),
                          false};
    return request(k, type, 0, &b, 1);
}

static void check_identity(struct disk* k) {
    uint64_t offered = k->features;
    bool ro = (offered & VIRTIO_BLK_F_RO) != 0;
    bool want_ro = disk_u64(k->index, "readonly", 0) != 0;
    report(ro == want_ro, "disk%d: VIRTIO_BLK_F_RO %s", k->index, ro ? "offered" : "not offered");
    bool trims = (offered & VIRTIO_BLK_F_DISCARD) && (offered & VIRTIO_BLK_F_WRITE_ZEROES);
    bool none = !(offered & (VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES));
    if (!want_ro)
        report(trims, "disk%d: DISCARD and WRITE_ZEROES offered", k->index);
    else if (!peer_qemu)
        report(none, "disk%d: DISCARD and WRITE_ZEROES not offered (read-only)", k->index);
    report(offered & VIRTIO_BLK_F_FLUSH, "disk%d: VIRTIO_BLK_F_FLUSH offered", k->index);
    k->readonly = ro;

    /* 64-bit fields are read as two 32-bit halves (4.1.3.1). */
    k->capacity = mmio_read32(k->v.device_cfg + CFG_CAPACITY) |
                  (uint64_t)mmio_read32(k->v.device_cfg + CFG_CAPACITY + 4) << 32;
    uint64_t want = disk_u64(k->index, "sectors", 0);
    if (want)
        report(k->capacity == want, "disk%d: capacity %lu sectors (expected %lu)", k->index,
               k->capacity, want);
    else
        report_info("disk%d: capacity %lu sectors", k->index, k->capacity);
    if (offered & VIRTIO_BLK_F_BLK_SIZE) {
        uint32_t blk_size = mmio_read32(k->v.device_cfg + CFG_BLK_SIZE);
        report(blk_size >= SECTOR && !(blk_size & (blk_size - 1)), "disk%d: blk_size %u", k->index,
               blk_size);
    }
    if (offered & VIRTIO_BLK_F_SEG_MAX)
        report(mmio_read32(k->v.device_cfg + CFG_SEG_MAX) >= 8, "disk%d: seg_max %u >= 8", k->index,
               mmio_read32(k->v.device_cfg + CFG_SEG_MAX));

    char id[24] = {0};
    memset(k->in, 0xff, 32);
    int st = one(k, VIRTIO_BLK_T_GET_ID, 0, k->in, 20, true);
    memcpy(id, k->in, 20);
    char want_id[24] = "";
    if (disk_str(k->index, "serial", want_id, sizeof(want_id)))
        report(st == VIRTIO_BLK_S_OK && !strcmp(id, want_id), "disk%d: serial '%s' (expected '%s')",
               k->index, id, want_id);
    else
        report_info("disk%d: GET_ID status %d, serial '%s'", k->index, st, id);
}

static void check_writable(struct disk* k) {
    uint64_t last = k->capacity - 1;
    int i = k->index;

    /* Writes: one descriptor, eight, and data split at odd offsets. */
    report(write_fill(k, 0, 8, 0xa1) == VIRTIO_BLK_S_OK, "disk%d: write 4 KiB at sector 0", i);
    struct virtq_buf eight[8];
    for (unsigned s = 0; s < 8; s++) {
        /* In reverse order in memory: the device must follow the chain. */
        memset(k->out + (7 - s) * SECTOR, 0xb0 + s, SECTOR);
        eight[s] = (struct virtq_buf){(uint64_t)(k->out + (7 - s) * SECTOR), SECTOR, false};
    }
    report(request(k, VIRTIO_BLK_T_OUT, 16, eight, 8) == VIRTIO_BLK_S_OK,
           "disk%d: write of 8 descriptors at sector 16", i);
    memset(k->out, 0xc3, 2048);
    struct virtq_buf split[3] = {{(uint64_t)k->out, 100, false},
                                 {(uint64_t)k->out + 100, 924, false},
                                 {(uint64_t)k->out + 1024, 1024, false}};
    report(request(k, VIRTIO_BLK_T_OUT, 32, split, 3) == VIRTIO_BLK_S_OK,
           "disk%d: write split 100+924+1024 at sector 32", i);
    report(write_fill(k, 64, 8, 0xd4) == VIRTIO_BLK_S_OK && write_fill(k, 80, 8, 0xe5) == 0 &&
               write_fill(k, 96, 8, 0xe6) == 0 && write_fill(k, 120, 16, 0x99) == 0,
           "disk%d: write the ranges to discard and zero", i);
    report(write_fill(k, last, 1, 0xf7) == VIRTIO_BLK_S_OK, "disk%d: write the last sector (%lu)",
           i, last);
    report(one(k, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false) == VIRTIO_BLK_S_OK, "disk%d: flush", i);

    /* Read back, including through a multi-descriptor read. */
    bool ok = reads_as(k, 0, 8, 0xa1) && reads_as(k, 32, 4, 0xc3) && reads_as(k, last, 1, 0xf7);
    for (unsigned s = 0; s < 8; s++)
        ok = ok && reads_as(k, 16 + s, 1, 0xb0 + s);
    report(ok, "disk%d: every range reads back what was written", i);
    struct virtq_buf two[2] = {{(uint64_t)k->in + 4096, 1536, true}, {(uint64_t)k->in, 512, true}};
    memset(k->in, 0, 8192);
    ok = request(k, VIRTIO_BLK_T_IN, 16, two, 2) == VIRTIO_BLK_S_OK;
    ok = ok && k->in[4096] == 0xb0 && k->in[4096 + 1535] == 0xb2 && k->in[0] == 0xb3 &&
         k->in[511] == 0xb3;
    report(ok, "disk%d: read into two descriptors (1536 + 512 bytes)", i);

    uint64_t fill = disk_u64(i, "fill", 0x100);
    if (fill <= 0xff)
        report(reads_as(k, 200, 8, (uint8_t)fill), "disk%d: untouched sectors read %#lx", i, fill);

    /* Write zeroes: must read as zeroes, with or without unmap. */
    if (k->features & VIRTIO_BLK_F_WRITE_ZEROES) {
        report(mmio_read32(k->v.device_cfg + CFG_MAX_WRITE_ZEROES_SECTORS) >= 8 &&
                   mmio_read32(k->v.device_cfg + CFG_MAX_WRITE_ZEROES_SEG) >= 1,
               "disk%d: max_write_zeroes_sectors %u, max_write_zeroes_seg %u", i,
               mmio_read32(k->v.device_cfg + CFG_MAX_WRITE_ZEROES_SECTORS),
               mmio_read32(k->v.device_cfg + CFG_MAX_WRITE_ZEROES_SEG));
        k->segments[0] = (struct blk_segment){80, 8, 0};
        report(
            segments(k, VIRTIO_BLK_T_WRITE_ZEROES, 1) == VIRTIO_BLK_S_OK && reads_as(k, 80, 8, 0),
            "disk%d: write-zeroes of sectors 80-87 reads as zeroes", i);
        k->segments[0] = (struct blk_segment){96, 8, 1};
        report(
            segments(k, VIRTIO_BLK_T_WRITE_ZEROES, 1) == VIRTIO_BLK_S_OK && reads_as(k, 96, 8, 0),
            "disk%d: write-zeroes with unmap of sectors 96-103 reads as zeroes", i);
        if (mmio_read32(k->v.device_cfg + CFG_MAX_WRITE_ZEROES_SEG) >= 2) {
            k->segments[0] = (struct blk_segment){120, 4, 0};
            k->segments[1] = (struct blk_segment){130, 4, 0};
            report(segments(k, VIRTIO_BLK_T_WRITE_ZEROES, 2) == VIRTIO_BLK_S_OK &&
                       reads_as(k, 120, 4, 0) && reads_as(k, 124, 6, 0x99) &&
                       reads_as(k, 130, 4, 0) && reads_as(k, 134, 2, 0x99),
                   "disk%d: two-segment write-zeroes zeroes exactly its segments", i);
        } else {
            report_skip("disk%d: two-segment write-zeroes (max_write_zeroes_seg 1)", i);
        }
        k->segments[0] = (struct blk_segment){80, 8, 2}; /* a reserved flag */
        report(segments(k, VIRTIO_BLK_T_WRITE_ZEROES, 1) == VIRTIO_BLK_S_UNSUPP,
               "disk%d: write-zeroes with a reserved flag: UNSUPP", i);
    }
    if (k->features & VIRTIO_BLK_F_DISCARD) {
        report(mmio_read32(k->v.device_cfg + CFG_MAX_DISCARD_SECTORS) >= 8 &&
                   mmio_read32(k->v.device_cfg + CFG_MAX_DISCARD_SEG) >= 1,
               "disk%d: max_discard_sectors %u, max_discard_seg %u", i,
               mmio_read32(k->v.device_cfg + CFG_MAX_DISCARD_SECTORS),
               mmio_read32(k->v.device_cfg + CFG_MAX_DISCARD_SEG));
        k->segments[0] = (struct blk_segment){64, 8, 0};
        report(segments(k, VIRTIO_BLK_T_DISCARD, 1) == VIRTIO_BLK_S_OK,
               "disk%d: discard of sectors 64-71", i);
        if (disk_u64(i, "discard_zeroes", 0))
            report(reads_as(k, 64, 8, 0), "disk%d: discarded sectors read as zeroes", i);
        k->segments[0] = (struct blk_segment){64, 8, 1}; /* unmap is for write-zeroes only */
        report(segments(k, VIRTIO_BLK_T_DISCARD, 1) == VIRTIO_BLK_S_UNSUPP,
               "disk%d: discard with the unmap flag: UNSUPP", i);
    }
    report(one(k, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false) == VIRTIO_BLK_S_OK, "disk%d: flush again", i);

    /* Bad requests. */
    report(one(k, VIRTIO_BLK_T_IN, k->capacity, k->in, SECTOR, true) == VIRTIO_BLK_S_IOERR,
           "disk%d: read at the capacity: IOERR", i);
    memset(k->out, 0x66, 2 * SECTOR);
    report(one(k, VIRTIO_BLK_T_OUT, last, k->out, 2 * SECTOR, false) == VIRTIO_BLK_S_IOERR,
           "disk%d: write straddling the end: IOERR", i);
    report(reads_as(k, last, 1, 0xf7), "disk%d: the last sector is unchanged", i);
    report(one(k, 0x42, 0, k->in, SECTOR, true) == VIRTIO_BLK_S_UNSUPP,
           "disk%d: request type 0x42: UNSUPP", i);
}

static void check_readonly(struct disk* k) {
    int i = k->index;
    uint64_t fill = disk_u64(i, "fill", 0x100);
    if (fill <= 0xff)
        report(reads_as(k, 0, 8, (uint8_t)fill) && reads_as(k, k->capacity - 1, 1, (uint8_t)fill),
               "disk%d: reads %#lx at the first and last sectors", i, fill);
    else
        report(one(k, VIRTIO_BLK_T_IN, 0, k->in, 4096, true) == VIRTIO_BLK_S_OK,
               "disk%d: read 4 KiB at sector 0", i);
    memcpy(k->out + 4096, k->in, 4096);
    memset(k->out, 0x3c, 4096);
    report(one(k, VIRTIO_BLK_T_OUT, 0, k->out, 4096, false) == VIRTIO_BLK_S_IOERR,
           "disk%d: write to the read-only disk: IOERR", i);
    memset(k->in, 0, 4096);
    report(one(k, VIRTIO_BLK_T_IN, 0, k->in, 4096, true) == VIRTIO_BLK_S_OK &&
               !memcmp(k->in, k->out + 4096, 4096),
           "disk%d: the read-only disk is unchanged", i);
    report(one(k, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false) == VIRTIO_BLK_S_OK,
           "disk%d: flush of the read-only disk", i);
}

/* A data descriptor outside guest RAM: the device must flag itself broken;
 * after a reset it works again. */
static void check_outside_ram(struct disk* k) {
    int i = k->index;
    struct virtq_buf b = {OUTSIDE_RAM, SECTOR, true};
    int st = request_within(k, VIRTIO_BLK_T_IN, 0, &b, 1, 1000);
    bool broken = (virtio_get_status(&k->v) & VIRTIO_STATUS_DEVICE_NEEDS_RESET) != 0;
    printf("  disk%d: outside-RAM request: status byte %d, device status %#x\n", i, st,
           virtio_get_status(&k->v));
    if (!peer_qemu)
        report(broken && st == TIMED_OUT,
               "disk%d: descriptor outside RAM: DEVICE_NEEDS_RESET, request not completed", i);
    else
        report_info("disk%d: descriptor outside RAM: DEVICE_NEEDS_RESET %s", i,
                    broken ? "set" : "not set");
    report(virtio_reset(&k->v, 1000), "disk%d: reset completes", i);
    report(setup(k) && one(k, VIRTIO_BLK_T_IN, 0, k->in, SECTOR, true) == VIRTIO_BLK_S_OK,
           "disk%d: works again after re-initialisation", i);
}

int main(void) {
    printf("Vireo guest kit: virtio_blk\n");
    char peer[16] = "vireo";
    cmdline_get("vireo.blk_peer", peer, sizeof(peer));
    peer_qemu = !strcmp(peer, "qemu");

    find_disks();
    uint64_t expected = cmdline_u64("vireo.disks", 0);
    if (expected)
        report(disk_count == (int)expected, "%d virtio-blk devices (expected %lu)", disk_count,
               expected);
    if (disk_count == 0)
        report_abort("no virtio-blk device (1af4:1042) on bus 0");

    for (int i = 0; i < disk_count; i++) {
        struct disk* k = &disks[i];
        printf("disk%d at 00:%02x.0\n", i, k->v.pci.dev);
        uint8_t* page = alloc_pages(1);
        k->out = alloc_pages(2);
        k->in = alloc_pages(2);
        if (!page || !k->out || !k->in || !virtq_alloc(&k->q, 0, QSIZE))
            report_abort("out of memory");
        k->header = (struct blk_header*)page;
        k->segments = (struct blk_segment*)(page + 64);
        k->status = page + 256;
        if (virtio_queue_max_size(&k->v, 0) < QSIZE)
            report_abort("disk%d: queue 0 smaller than %d", i, QSIZE);
        if (k->v.has_msix) {
            msix_count_vector((uint8_t)(VECTOR_BASE + i));
            msix_set_entry(&k->v.msix, 0, (uint8_t)(VECTOR_BASE + i), lapic_id());
            msix_enable(&k->v.msix);
        }
        if (!report(setup(k), "disk%d: negotiated, queue 0 with MSI-X entry 0, DRIVER_OK", i))
            continue;
        check_identity(k);
        if (k->capacity < MIN_SECTORS) {
            report(false, "disk%d: %lu sectors, the test needs %d", i, k->capacity, MIN_SECTORS);
            continue;
        }
        if (k->readonly)
            check_readonly(k);
        else
            check_writable(k);
        if (k->v.has_msix)
            report(msix_irq_count[VECTOR_BASE + i] > 0, "disk%d: %lu MSI-X interrupts", i,
                   msix_irq_count[VECTOR_BASE + i]);
        check_outside_ram(k);
    }
    report_summary();
}
