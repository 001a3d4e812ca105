#include "virtqueue.h"

#include "io.h"
#include "page_alloc.h"
#include "tsc.h"

static uint64_t pages_for(uint64_t bytes) {
    return (bytes + PAGE_SIZE - 1) / PAGE_SIZE;
}

bool virtq_alloc(struct virtq* q, uint16_t index, uint16_t size) {
    q->index = index;
    q->size = size;
    q->desc = alloc_pages(pages_for(16ull * size));
    q->avail = alloc_pages(pages_for(6 + 2ull * size));
    q->used = alloc_pages(pages_for(6 + 8ull * size));
    virtq_reset(q);
    return q->desc && q->avail && q->used;
}

void virtq_reset(struct virtq* q) {
    q->next_desc = 0;
    q->last_used = 0;
    q->kicked_idx = 0;
    if (!q->avail || !q->used)
        return;
    q->avail->flags = 0;
    q->avail->idx = 0;
    q->used->flags = 0;
    q->used->idx = 0;
}

void virtq_publish(struct virtq* q, uint16_t head) {
    q->avail->ring[q->avail->idx % q->size] = head;
    mb(); /* descriptors and ring entry before the index */
    q->avail->idx++;
    mb();
}

uint16_t virtq_add(struct virtq* q, const struct virtq_buf* bufs, unsigned n) {
    uint16_t head = q->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = q->next_desc;
        q->next_desc = (uint16_t)((q->next_desc + 1) % q->size);
        q->desc[d].addr = bufs[i].addr;
        q->desc[d].len = bufs[i].len;
        q->desc[d].flags =
            (bufs[i].device_writes ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        q->desc[d].next = i + 1 < n ? q->next_desc : 0;
    }
    virtq_publish(q, head);
    return head;
}

bool virtq_get_used(struct virtq* q, struct virtq_used_elem* out) {
    if (*(volatile uint16_t*)&q->used->idx == q->last_used)
        return false;
    mb();
    *out = q->used->ring[q->last_used % q->size];
    q->last_used++;
    return true;
}

bool virtq_poll_used(struct virtq* q, struct virtq_used_elem* out, bool event_idx,
                     uint64_t timeout_us) {
    uint64_t spins = 0, deadline = 0;
    while (!virtq_get_used(q, out)) {
        /* time_us() only now and then: the TSC read is cheap, the division is not. */
        if ((++spins & 0xffff) == 0) {
            if (!deadline)
                deadline = time_us() + timeout_us;
            else if (time_us() > deadline)
                return false;
        }
        cpu_relax();
    }
    if (event_idx)
        *virtq_used_event(q) = (uint16_t)(q->last_used + 0x7fff); /* never reached */
    return true;
}

bool virtq_kick_needed(struct virtq* q, bool event_idx) {
    mb(); /* the avail idx before what the device wrote about notifications */
    uint16_t now = *(volatile uint16_t*)&q->avail->idx;
    bool needed;
    if (event_idx) /* vring_need_event(): avail_event in [kicked_idx, now) */
        needed = (uint16_t)(now - *virtq_avail_event(q) - 1) < (uint16_t)(now - q->kicked_idx);
    else
        needed = !(*(volatile uint16_t*)&q->used->flags & VIRTQ_USED_F_NO_NOTIFY);
    q->kicked_idx = now;
    return needed;
}
