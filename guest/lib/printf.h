/* printf subset: %d %i %u %x %X %s %c %p %%, flags '-' '0' '#', width, .precision (%s only),
 * l/ll/z. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

int printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char* fmt, va_list ap);
int snprintf(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap);
/* printf without taking the console lock: for fatal paths only. */
int printf_unlocked(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
