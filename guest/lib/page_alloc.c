#include "page_alloc.h"

#include <stdint.h>

#include "spinlock.h"
#include "string.h"

#define ARENA_PAGES 512

static uint8_t arena[ARENA_PAGES][PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static size_t used;
static struct spinlock lock;

void* alloc_pages(size_t count) {
    spin_lock(&lock);
    void* p = NULL;
    if (count <= ARENA_PAGES - used) {
        p = arena[used];
        used += count;
    }
    spin_unlock(&lock);
    if (p)
        memset(p, 0, count * PAGE_SIZE);
    return p;
}
