/* A split virtqueue (virtio 1.x, section 2.7): descriptor table, avail and used rings. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[]; /* size entries, then used_event */
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[]; /* size entries, then avail_event */
};

struct virtq {
    uint16_t index;
    uint16_t size;
    struct virtq_desc* desc;
    struct virtq_avail* avail;
    struct virtq_used* used;
    uint16_t next_desc; /* descriptors are handed out round-robin */
    uint16_t last_used;
    uint16_t kicked_idx;  /* avail idx at the last virtq_kick_needed() */
    uint64_t notify_addr; /* set by virtio_pci_setup_queue */
};

struct virtq_buf {
    uint64_t addr;
    uint32_t len;
    bool device_writes;
};

/* Allocates the rings (page-aligned, zeroed) for `size` entries (a power of 2). */
bool virtq_alloc(struct virtq* q, uint16_t index, uint16_t size);
/* Resets ring indices after a device reset (memory is reused). */
void virtq_reset(struct virtq* q);
/* Writes a chain for `bufs` and publishes it in the avail ring; returns the head. */
uint16_t virtq_add(struct virtq* q, const struct virtq_buf* bufs, unsigned n);
/* Publishes `head` in the avail ring (for hand-made chains). */
void virtq_publish(struct virtq* q, uint16_t head);
/* Pops one used element; false if the device has not returned any. */
bool virtq_get_used(struct virtq* q, struct virtq_used_elem* out);
/* Spins until the device returns one used element; false after timeout_us.
 * With event_idx, then moves used_event half a ring ahead: a driver that
 * polls wants no interrupt. */
bool virtq_poll_used(struct virtq* q, struct virtq_used_elem* out, bool event_idx,
                     uint64_t timeout_us);

/* The index fields after the rings (2.7.10): avail->used_event, used->avail_event. */
static inline volatile uint16_t* virtq_used_event(const struct virtq* q) {
    return &q->avail->ring[q->size];
}
static inline volatile uint16_t* virtq_avail_event(const struct virtq* q) {
    return (volatile uint16_t*)&q->used->ring[q->size];
}
/* Whether the device wants to be notified of what was published since the
 * last call: unless it set VIRTQ_USED_F_NO_NOTIFY, or, with VIRTIO_F_EVENT_IDX
 * negotiated, unless its avail_event lies outside those entries. */
bool virtq_kick_needed(struct virtq* q, bool event_idx);
