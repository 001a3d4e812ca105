/* A bump allocator of zeroed 4 KiB pages from a static arena (covered by the
 * image's init_size, so no loader puts anything there). Never frees. */
#pragma once

#include <stddef.h>

#define PAGE_SIZE 4096

/* Returns NULL when the arena (2 MiB) is exhausted. */
void* alloc_pages(size_t count);
