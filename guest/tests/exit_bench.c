/*
 * exit_bench: cost of port-I/O and MMIO exits, from ring 0 (through the
 * ring-0 call service) and from ring 3, plus the ring-0 call round trip.
 * With a virtio-rng device present, also virtqueue notifications (the
 * ioeventfd path in VMMs that use one). Each figure is the median over
 * BATCHES batches of the mean per operation.
 *
 *   bench.iters=N      operations per batch (default 1000)
 *   bench.pio_port=P   port written (default 0x80, which nothing claims)
 *   bench.mmio_addr=A  address written (default 0xd0000000, unclaimed PCI window)
 *
 * Output, one per line:  BENCH <name>_cycles=<n>  and, when the TSC frequency
 * is known, BENCH <name>_ns=<n>;  BENCH tsc_khz=<n> (0 if unknown).
 */
#include "cmdline.h"
#include "io.h"
#include "printf.h"
#include "report.h"
#include "ring0.h"
#include "tsc.h"
#include "virtio_pci.h"

#define BATCHES 5

static uint64_t iters;
static uint16_t pio_port;
static uint64_t mmio_addr;

static uint64_t pio_loop(uint64_t n) {
    uint64_t t0 = rdtsc();
    for (uint64_t i = 0; i < n; i++)
        outb(pio_port, 0);
    return rdtsc() - t0;
}

static uint64_t mmio_loop(uint64_t n) {
    uint64_t t0 = rdtsc();
    for (uint64_t i = 0; i < n; i++)
        mmio_write32(mmio_addr, 0);
    return rdtsc() - t0;
}

static uint64_t notify_addr;

static uint64_t notify_loop(uint64_t n) {
    uint64_t t0 = rdtsc();
    for (uint64_t i = 0; i < n; i++)
        mmio_write16(notify_addr, 0);
    return rdtsc() - t0;
}

/* Queue 0 of virtio-rng enabled with an empty ring: notifications find no work. */
static bool setup_notify(void) {
    static struct virtio_pci v;
    static struct virtq q;
    uint64_t features;
    if (!virtio_pci_find(VIRTIO_ID_RNG, &v) || !virtio_negotiate(&v, VIRTIO_F_VERSION_1, &features))
        return false;
    uint16_t max = virtio_queue_max_size(&v, 0);
    if (!max || !virtq_alloc(&q, 0, max < 8 ? max : 8) ||
        !virtio_setup_queue(&v, &q, VIRTIO_MSI_NO_VECTOR))
        return false;
    virtio_driver_ok(&v);
    notify_addr = q.notify_addr;
    return true;
}

static uint64_t nothing(uint64_t arg) {
    return arg;
}

static uint64_t ring0_call_loop(uint64_t n) {
    uint64_t t0 = rdtsc();
    for (uint64_t i = 0; i < n; i++)
        ring0_call(nothing, i);
    return rdtsc() - t0;
}

/* Median of BATCHES per-operation means; the loop runs in ring 0 if `ring0`. */
static uint64_t measure(uint64_t (*loop)(uint64_t), bool ring0) {
    uint64_t per_op[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        uint64_t cycles = ring0 ? ring0_call(loop, iters) : loop(iters);
        per_op[b] = cycles / iters;
    }
    for (int i = 1; i < BATCHES; i++)
        for (int j = i; j > 0 && per_op[j] < per_op[j - 1]; j--) {
            uint64_t t = per_op[j];
            per_op[j] = per_op[j - 1];
            per_op[j - 1] = t;
        }
    return per_op[BATCHES / 2];
}

static void bench(const char* name, uint64_t (*loop)(uint64_t), bool ring0) {
    uint64_t cycles = measure(loop, ring0);
    printf("BENCH %s_cycles=%lu\n", name, cycles);
    if (tsc_khz())
        printf("BENCH %s_ns=%lu\n", name, cycles_to_ns(cycles));
    report(cycles > 0, "%s: %lu cycles per operation", name, cycles);
}

int main(void) {
    printf("Vireo guest kit: exit_bench\n");
    iters = cmdline_u64("bench.iters", 1000);
    if (!iters)
        iters = 1;
    pio_port = (uint16_t)cmdline_u64("bench.pio_port", 0x80);
    mmio_addr = cmdline_u64("bench.mmio_addr", 0xd0000000);
    if (mmio_addr >= (4ull << 30))
        report_abort("bench.mmio_addr %#lx: only the low 4 GiB are mapped", mmio_addr);
    printf("BENCH tsc_khz=%lu\n", tsc_khz());
    printf("BENCH iters=%lu\n", iters);
    report_info("TSC frequency from %s; port %#x, MMIO address %#lx", tsc_khz_source(), pio_port,
                mmio_addr);

    bench("ring0_call", ring0_call_loop, false);
    bench("pio_ring0", pio_loop, true);
    bench("pio_ring3", pio_loop, false);
    bench("mmio_ring0", mmio_loop, true);
    bench("mmio_ring3", mmio_loop, false);
    if (setup_notify()) {
        report_info("virtio-rng queue 0 notify address %#lx", notify_addr);
        bench("notify_ring0", notify_loop, true);
        bench("notify_ring3", notify_loop, false);
    } else {
        report_skip("notify benchmarks: no virtio-rng device");
    }
    report_summary();
}
