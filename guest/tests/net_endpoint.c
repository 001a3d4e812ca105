/*
 * net_endpoint: a network endpoint on the first virtio-net PCI device
 * (1af4:1041), for tests and for comparing VMMs' transmit paths
 * (bench/net_bench.py). It answers ARP for its address and ping (ICMP echo),
 * and when a UDP datagram reaches its port 7777 it sends net.count 60-byte
 * UDP frames as fast as the device takes them back to where the datagram came
 * from (the sender's MAC, address and port), timed with the TSC, then ends.
 *
 * Both queues are polled with interrupts suppressed (no MSI-X vector,
 * VIRTQ_AVAIL_F_NO_INTERRUPT or a used_event never reached), so a figure is
 * the cost of notify -> device -> used ring, not of interrupt delivery. The
 * driver notifies only when the device asks: VIRTQ_USED_F_NO_NOTIFY, or with
 * net.event_idx=1 (the default, as Linux negotiates it) the avail_event index.
 * Frames are one descriptor each: the 12-byte virtio-net header, then the frame.
 *
 * With net.interrupts=1 the burst is sent as Linux's virtio_net driver sends
 * (start_xmit with transmit NAPI): before each frame it takes back what the
 * device returned and asks for an interrupt once three quarters of what is
 * then in flight come back (virtqueue_enable_cb_delayed); with the ring full
 * it waits for that interrupt (MSI-X, transmit queue only). That pattern,
 * not the polling one, is what a guest kernel makes a VMM serve.
 *
 * Command line:
 *   net.ip=A.B.C.D    the endpoint's IPv4 address (required)
 *   net.count=N       frames sent after the request (default 100000)
 *   net.depth=D       frames in flight at most (default 128, at most 128)
 *   net.event_idx=0   do not negotiate VIRTIO_F_EVENT_IDX
 *   net.wait_s=S      seconds to wait for the request (default 120)
 *   net.pings=K       fail unless at least K echo requests were answered
 *   net.interrupts=1  send the burst as Linux does, on transmit interrupts
 *
 * Output: "READY mac=<mac> ip=<ip>" once it answers, then
 *   BENCH net_tx_60_fps=<n>     frames a second
 *   BENCH net_tx_60_kicks=<n>   notifications sent (not skipped as asked)
 *   BENCH net_tx_60_interrupts=<n>  transmit interrupts taken (net.interrupts=1)
 *   BENCH net_pings=<n>         echo requests answered
 * and BENCH tsc_khz=<n>. Without a known TSC frequency the test fails.
 */
#include "cmdline.h"
#include "io.h"
#include "lapic.h"
#include "page_alloc.h"
#include "printf.h"
#include "report.h"
#include "string.h"
#include "tsc.h"
#include "virtio_pci.h"

#define VIRTIO_ID_NET 1
#define VIRTIO_NET_F_MAC (1ull << 5)
#define RECEIVE_QUEUE 0
#define TRANSMIT_QUEUE 1
#define QUEUE_SIZE 256
#define MAX_DEPTH 128
#define NET_HEADER_BYTES 12 /* struct virtio_net_hdr_v1 */
#define RECEIVE_BUFFER_BYTES 2048
#define SLOT_BYTES 128
#define FRAME_BYTES 60 /* the shortest Ethernet frame, without its FCS */
#define REQUEST_PORT 7777
#define TIMEOUT_US 10000000ull /* one frame back from the device, 10 s */
#define TRANSMIT_VECTOR 0x51

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define IP_ICMP 1
#define IP_UDP 17

static struct virtio_pci dev;
static struct virtq rxq, txq;
static uint8_t* receive_buffers;
static uint8_t* transmit_slots;
static uint8_t* reply_buffer; /* a page: header, then an ARP or echo reply */
static bool event_idx;
static bool interrupts; /* net.interrupts: the burst as Linux sends it */
static uint8_t mac[6];
static uint8_t ip[4];
static uint64_t kicks, pings;

/* Where the request came from: where the frames go. */
static struct {
    uint8_t mac[6];
    uint8_t ip[4];
    uint16_t port;
} peer;

static uint16_t load16(const uint8_t* p) { /* network order */
    return (uint16_t)(p[0] << 8 | p[1]);
}
static void store16(uint8_t* p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The Internet checksum (RFC 1071) of `n` bytes. */
static uint16_t checksum(const uint8_t* p, size_t n) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += load16(p + i);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static bool parse_ip(const char* s, uint8_t out[4]) {
    for (int i = 0; i < 4; i++) {
        unsigned v = 0, digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 3) {
            v = v * 10 + (unsigned)(*s++ - '0');
            digits++;
        }
        if (!digits || v > 255 || *s != (i < 3 ? '.' : '\0'))
            return false;
        out[i] = (uint8_t)v;
        s++;
    }
    return true;
}

static void notify(struct virtq* q) {
    if (virtq_kick_needed(q, event_idx)) {
        virtio_notify(q);
        kicks++;
    }
}

static uint8_t* slot_frame(unsigned slot) {
    return transmit_slots + slot * SLOT_BYTES + NET_HEADER_BYTES;
}

/* Slot i owns transmit descriptor i; its header stays zero (no offloads). */
static void publish_slot(unsigned slot, uint32_t frame_bytes) {
    txq.desc[slot] = (struct virtq_desc){(uint64_t)(transmit_slots + slot * SLOT_BYTES),
                                         NET_HEADER_BYTES + frame_bytes, 0, 0};
    virtq_publish(&txq, (uint16_t)slot);
}

/* Sends the reply in reply_buffer (through descriptor 0, before any frame
 * of the blast uses it) and waits for the device to take it. */
static void send_reply(uint32_t frame_bytes) {
    txq.desc[0] = (struct virtq_desc){(uint64_t)reply_buffer, NET_HEADER_BYTES + frame_bytes, 0, 0};
    virtq_publish(&txq, 0);
    notify(&txq);
    struct virtq_used_elem e;
    if (!virtq_poll_used(&txq, &e, event_idx, TIMEOUT_US) || e.id != 0)
        report_abort("the device did not return a reply's buffer");
}

static void post_receive_buffer(uint16_t index) {
    rxq.desc[index] =
        (struct virtq_desc){(uint64_t)(receive_buffers + index * RECEIVE_BUFFER_BYTES),
                            RECEIVE_BUFFER_BYTES, VIRTQ_DESC_F_WRITE, 0};
    virtq_publish(&rxq, index);
}

static void answer_arp(const uint8_t* frame, uint32_t length) {
    const uint8_t* arp = frame + 14;
    if (length < 14 + 28 || load16(arp) != 1 || load16(arp + 2) != ETHERTYPE_IPV4 || arp[4] != 6 ||
        arp[5] != 4 || load16(arp + 6) != 1 || memcmp(arp + 24, ip, 4) != 0)
        return;
    uint8_t* out = reply_buffer + NET_HEADER_BYTES;
    memset(out, 0, FRAME_BYTES);
    memcpy(out, arp + 8, 6); /* to the asker */
    memcpy(out + 6, mac, 6);
    store16(out + 12, ETHERTYPE_ARP);
    uint8_t* reply = out + 14;
    memcpy(reply, arp, 6); /* hardware and protocol types and sizes */
    store16(reply + 6, 2);
    memcpy(reply + 8, mac, 6);
    memcpy(reply + 14, ip, 4);
    memcpy(reply + 18, arp + 8, 10); /* the asker's MAC and address */
    send_reply(FRAME_BYTES);
}

static void answer_echo(const uint8_t* frame, uint32_t header_bytes, uint32_t ip_bytes) {
    const uint8_t* icmp = frame + 14 + header_bytes;
    uint32_t icmp_bytes = ip_bytes - header_bytes;
    if (icmp_bytes < 8 || icmp[0] != 8 || NET_HEADER_BYTES + 14 + ip_bytes > PAGE_SIZE)
        return;
    uint8_t* out = reply_buffer + NET_HEADER_BYTES;
    memset(out, 0, FRAME_BYTES);
    memcpy(out, frame + 6, 6);
    memcpy(out + 6, mac, 6);
    store16(out + 12, ETHERTYPE_IPV4);
    memcpy(out + 14, frame + 14, ip_bytes);
    uint8_t* reply_ip = out + 14;
    memcpy(reply_ip + 16, frame + 14 + 12, 4); /* back to the sender */
    memcpy(reply_ip + 12, ip, 4);
    reply_ip[8] = 64;
    store16(reply_ip + 10, 0);
    store16(reply_ip + 10, checksum(reply_ip, header_bytes));
    uint8_t* reply = reply_ip + header_bytes;
    reply[0] = 0; /* echo reply */
    store16(reply + 2, 0);
    store16(reply + 2, checksum(reply, icmp_bytes));
    uint32_t bytes = 14 + ip_bytes;
    send_reply(bytes < FRAME_BYTES ? FRAME_BYTES : bytes);
    pings++;
}

/* Answers what asks for an answer; true when the frame is the request. */
static bool handle(const uint8_t* frame, uint32_t length) {
    if (length < 14)
        return false;
    uint16_t type = load16(frame + 12);
    if (type == ETHERTYPE_ARP) {
        answer_arp(frame, length);
        return false;
    }
    const uint8_t* packet = frame + 14;
    if (type != ETHERTYPE_IPV4 || length < 14 + 20 || packet[0] >> 4 != 4)
        return false;
    uint32_t header_bytes = (packet[0] & 0xf) * 4u;
    uint32_t ip_bytes = load16(packet + 2);
    if (header_bytes < 20 || ip_bytes < header_bytes || 14 + ip_bytes > length ||
        memcmp(packet + 16, ip, 4) != 0)
        return false;
    if (packet[9] == IP_ICMP) {
        answer_echo(frame, header_bytes, ip_bytes);
        return false;
    }
    const uint8_t* udp = packet + header_bytes;
    if (packet[9] != IP_UDP || ip_bytes - header_bytes < 8 || load16(udp + 2) != REQUEST_PORT)
        return false;
    memcpy(peer.mac, frame + 6, 6);
    memcpy(peer.ip, packet + 12, 4);
    peer.port = load16(udp);
    return true;
}

/* Serves ARP and ping until the request comes; false after `wait_s` seconds. */
static bool serve_until_request(uint64_t wait_s) {
    uint64_t deadline = time_us() + wait_s * 1000000;
    struct virtq_used_elem e;
    for (uint64_t spins = 0;; spins++) {
        if (!virtq_get_used(&rxq, &e)) {
            if ((spins & 0xffff) == 0 && time_us() > deadline)
                return false;
            cpu_relax();
            continue;
        }
        if (event_idx)
            *virtq_used_event(&rxq) = (uint16_t)(rxq.last_used + 0x7fff);
        if (e.id >= QUEUE_SIZE)
            report_abort("receive queue returned head %u, not one of ours", e.id);
        const uint8_t* buffer = receive_buffers + e.id * RECEIVE_BUFFER_BYTES;
        uint32_t length = e.len < RECEIVE_BUFFER_BYTES ? e.len : RECEIVE_BUFFER_BYTES;
        bool request = length > NET_HEADER_BYTES &&
                       handle(buffer + NET_HEADER_BYTES, length - NET_HEADER_BYTES);
        post_receive_buffer((uint16_t)e.id);
        notify(&rxq);
        if (request)
            return true;
    }
}

/* A UDP frame to the peer carrying `sequence`. */
static void build_frame(uint8_t* out, uint64_t sequence) {
    memset(out, 0, FRAME_BYTES);
    memcpy(out, peer.mac, 6);
    memcpy(out + 6, mac, 6);
    store16(out + 12, ETHERTYPE_IPV4);
    uint8_t* packet = out + 14;
    packet[0] = 0x45;
    store16(packet + 2, FRAME_BYTES - 14);
    packet[8] = 64;
    packet[9] = IP_UDP;
    memcpy(packet + 12, ip, 4);
    memcpy(packet + 16, peer.ip, 4);
    store16(packet + 10, checksum(packet, 20));
    uint8_t* udp = packet + 20;
    store16(udp, REQUEST_PORT);
    store16(udp + 2, peer.port);
    store16(udp + 4, FRAME_BYTES - 14 - 20); /* checksum 0: none (IPv4) */
    for (int i = 0; i < 8; i++)
        udp[8 + i] = (uint8_t)(sequence >> (56 - 8 * i));
}

/* Sends `count` frames with at most `depth` in flight; the TSC cycles they took (0 on a timeout).
 */
static uint64_t blast(uint64_t count, unsigned depth) {
    uint64_t sent = 0, done = 0;
    uint64_t t0 = rdtsc();
    for (unsigned i = 0; i < depth && sent < count; i++, sent++) {
        build_frame(slot_frame(i), sent);
        publish_slot(i, FRAME_BYTES);
    }
    notify(&txq);
    while (done < count) {
        struct virtq_used_elem e;
        if (!virtq_poll_used(&txq, &e, event_idx, TIMEOUT_US))
            return 0;
        /* Refill every slot already back before the next notification, as a
         * driver's transmit path would. */
        bool refilled = false;
        for (;;) {
            if (e.id >= depth)
                report_abort("transmit queue returned head %u, not one of ours", e.id);
            done++;
            if (sent < count) {
                build_frame(slot_frame(e.id), sent++);
                publish_slot(e.id, FRAME_BYTES);
                refilled = true;
            }
            if (*(volatile uint16_t*)&txq.used->idx == txq.last_used)
                break;
            if (!virtq_poll_used(&txq, &e, event_idx, TIMEOUT_US))
                return 0;
        }
        if (refilled)
            notify(&txq);
    }
    return rdtsc() - t0;
}

/* Waits for a transmit interrupt after `seen`; false after TIMEOUT_US. */
static bool wait_for_interrupt(uint64_t seen) {
    uint64_t deadline = time_us() + TIMEOUT_US;
    for (uint64_t spins = 0; msix_irq_count[TRANSMIT_VECTOR] == seen; spins++) {
        if ((spins & 0xffff) == 0 && time_us() > deadline)
            return false;
        cpu_relax();
    }
    return true;
}

/* As blast(), but as Linux's driver transmits (see the top of the file); the
 * TSC cycles the frames took (0 on a timeout). */
static uint64_t blast_on_interrupts(uint64_t count, unsigned depth) {
    uint16_t free_slots[MAX_DEPTH];
    unsigned free_count = 0;
    for (unsigned i = depth; i > 0; i--)
        free_slots[free_count++] = (uint16_t)(i - 1);
    uint64_t sent = 0, done = 0;
    uint64_t t0 = rdtsc();
    while (done < count) {
        struct virtq_used_elem e;
        while (virtq_get_used(&txq, &e)) {
            if (e.id >= depth || free_count == depth)
                report_abort("transmit queue returned head %u, not one in flight", e.id);
            free_slots[free_count++] = (uint16_t)e.id;
            done++;
        }
        /* An interrupt once 3/4 of what is in flight has come back; if that
         * many came back already, there is nothing to wait for. */
        uint16_t in_flight = (uint16_t)(sent - done);
        uint16_t wanted = (uint16_t)(in_flight * 3 / 4);
        *virtq_used_event(&txq) = (uint16_t)(txq.last_used + wanted);
        mb();
        if (sent < count && free_count) {
            unsigned slot = free_slots[--free_count];
            build_frame(slot_frame(slot), sent++);
            publish_slot(slot, FRAME_BYTES);
            notify(&txq);
        } else if (done < count &&
                   (uint16_t)(*(volatile uint16_t*)&txq.used->idx - txq.last_used) <= wanted &&
                   !wait_for_interrupt(msix_irq_count[TRANSMIT_VECTOR])) {
            return 0;
        }
    }
    return rdtsc() - t0;
}

static bool setup(void) {
    uint64_t wanted = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | (event_idx ? VIRTIO_F_EVENT_IDX : 0);
    uint64_t features;
    if (!report(virtio_negotiate(&dev, wanted, &features), "features negotiated"))
        return false;
    if (!report(features & VIRTIO_NET_F_MAC, "VIRTIO_NET_F_MAC negotiated"))
        return false;
    if (event_idx && !report(features & VIRTIO_F_EVENT_IDX, "VIRTIO_F_EVENT_IDX negotiated"))
        return false;
    struct virtq* queues[2] = {&rxq, &txq};
    for (uint16_t i = 0; i < 2; i++) {
        if (!report(virtio_queue_max_size(&dev, i) >= QUEUE_SIZE, "queue %u holds %u descriptors",
                    i, QUEUE_SIZE))
            return false;
        if (!virtq_alloc(queues[i], i, QUEUE_SIZE))
            report_abort("out of memory for the rings");
        /* With net.interrupts the transmit queue signals MSI-X entry 0. */
        uint16_t entry = interrupts && i == TRANSMIT_QUEUE ? 0 : VIRTIO_MSI_NO_VECTOR;
        if (!report(virtio_setup_queue(&dev, queues[i], entry), "queue %u set up, MSI-X entry %s",
                    i, entry == 0 ? "0" : "none"))
            return false;
        queues[i]->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT; /* with EVENT_IDX: used_event */
        if (event_idx)
            *virtq_used_event(queues[i]) = 0x7fff;
    }
    if (interrupts) {
        msix_count_vector(TRANSMIT_VECTOR);
        msix_set_entry(&dev.msix, 0, TRANSMIT_VECTOR, lapic_id());
        msix_enable(&dev.msix);
    }
    for (int i = 0; i < 6; i++)
        mac[i] = mmio_read8(dev.device_cfg + (uint64_t)i);
    receive_buffers = alloc_pages(QUEUE_SIZE * RECEIVE_BUFFER_BYTES / PAGE_SIZE);
    transmit_slots = alloc_pages(MAX_DEPTH * SLOT_BYTES / PAGE_SIZE);
    reply_buffer = alloc_pages(1);
    if (!receive_buffers || !transmit_slots || !reply_buffer)
        report_abort("out of memory for the buffers");
    for (uint16_t i = 0; i < QUEUE_SIZE; i++)
        post_receive_buffer(i);
    virtio_driver_ok(&dev);
    notify(&rxq);
    return report(virtio_get_status(&dev) & VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK");
}

int main(void) {
    printf("Vireo guest kit: net_endpoint\n");
    char address[16];
    if (!cmdline_get("net.ip", address, sizeof(address)) || !parse_ip(address, ip))
        report_abort("net.ip=A.B.C.D is missing or malformed");
    uint64_t count = cmdline_u64("net.count", 100000);
    uint64_t depth = cmdline_u64("net.depth", MAX_DEPTH);
    event_idx = cmdline_u64("net.event_idx", 1) != 0;
    interrupts = cmdline_u64("net.interrupts", 0) != 0;
    if (interrupts && !event_idx)
        report_abort("net.interrupts=1 needs net.event_idx=1: Linux asks for its interrupts so");
    if (!count || !depth || depth > MAX_DEPTH)
        report_abort("net.count %lu, net.depth %lu: need a count and a depth of 1 to %d", count,
                     depth, MAX_DEPTH);
    printf("BENCH tsc_khz=%lu\n", tsc_khz());
    if (!report(tsc_khz() != 0, "TSC frequency known (%s)", tsc_khz_source()))
        report_summary();
    if (!virtio_pci_find(VIRTIO_ID_NET, &dev))
        report_abort("no virtio-net device (1af4:1041) on bus 0");
    if (interrupts && !report(dev.has_msix, "MSI-X for the transmit interrupts"))
        report_summary();
    if (!setup())
        report_summary();
    printf("READY mac=%02x:%02x:%02x:%02x:%02x:%02x ip=%u.%u.%u.%u\n", mac[0], mac[1], mac[2],
           mac[3], mac[4], mac[5], ip[0], ip[1], ip[2], ip[3]);
    bool requested = serve_until_request(cmdline_u64("net.wait_s", 120));
    printf("BENCH net_pings=%lu\n", pings);
    uint64_t expected_pings = cmdline_u64("net.pings", 0);
    if (expected_pings)
        report(pings >= expected_pings, "%lu echo requests answered (at least %lu)", pings,
               expected_pings);
    if (!report(requested, "a request came to UDP port %d", REQUEST_PORT))
        report_summary();
    kicks = 0;
    uint64_t interrupts_before = msix_irq_count[TRANSMIT_VECTOR];
    uint64_t cycles =
        interrupts ? blast_on_interrupts(count, (unsigned)depth) : blast(count, (unsigned)depth);
    if (report(cycles > 0, "%lu frames of %d bytes sent to %u.%u.%u.%u port %u", count, FRAME_BYTES,
               peer.ip[0], peer.ip[1], peer.ip[2], peer.ip[3], peer.port)) {
        uint64_t ns = cycles_to_ns(cycles);
        printf("BENCH net_tx_60_fps=%lu\n", (uint64_t)(count * 1000000000ull / (ns ? ns : 1)));
        printf("BENCH net_tx_60_kicks=%lu\n", kicks);
        if (interrupts)
            printf("BENCH net_tx_60_interrupts=%lu\n",
                   (uint64_t)(msix_irq_count[TRANSMIT_VECTOR] - interrupts_before));
    }
    report_summary();
}
