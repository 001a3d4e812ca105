/* key=value lookups in the kernel command line (space-separated words). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Copies the value of `key` into buf (NUL-terminated); false if absent. */
bool cmdline_get(const char* key, char* buf, size_t size);
/* Decimal or 0x-hex value of `key`, or `fallback` when absent or malformed. */
uint64_t cmdline_u64(const char* key, uint64_t fallback);
bool cmdline_has(const char* key);
/* Parses decimal or 0x-prefixed hex; false on anything else. */
bool parse_u64(const char* s, uint64_t* out);
