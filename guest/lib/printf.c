#include "printf.h"

#include <stdint.h>

#include "serial.h"
#include "spinlock.h"

struct out {
    char* buf;
    size_t size, len;
};

static void put(struct out* o, char c) {
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void put_number(struct out* o, uint64_t v, unsigned base, int upper, int width, int zero,
                       int left, const char* prefix) {
    char tmp[24];
    int n = 0;
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    int plen = 0;
    while (prefix[plen])
        plen++;
    int pad = width - n - plen;
    if (!left && !zero)
        for (; pad > 0; pad--)
            put(o, ' ');
    for (int i = 0; i < plen; i++)
        put(o, prefix[i]);
    if (!left && zero)
        for (; pad > 0; pad--)
            put(o, '0');
    while (n)
        put(o, tmp[--n]);
    for (; pad > 0; pad--)
        put(o, ' ');
}

int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap) {
    struct out o = {buf, size, 0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        int left = 0, zero = 0, alt = 0, width = 0, lng = 0, precision = -1;
        for (;; fmt++) {
            if (fmt[1] == '-')
                left = 1;
            else if (fmt[1] == '0')
                zero = 1;
            else if (fmt[1] == '#')
                alt = 1;
            else
                break;
        }
        while (fmt[1] >= '0' && fmt[1] <= '9')
            width = width * 10 + (*++fmt - '0');
        if (fmt[1] == '.') {
            fmt++;
            precision = 0;
            while (fmt[1] >= '0' && fmt[1] <= '9')
                precision = precision * 10 + (*++fmt - '0');
        }
        while (fmt[1] == 'l' || fmt[1] == 'z')
            lng = 1, fmt++;
        char c = *++fmt;
        switch (c) {
            case 'd':
            case 'i': {
                int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
                put_number(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, 0, width, zero, left,
                           v < 0 ? "-" : "");
                break;
            }
            case 'u':
                put_number(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, 0, width,
                           zero, left, "");
                break;
            case 'x':
            case 'X':
                put_number(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, c == 'X',
                           width, zero, left, alt ? "0x" : "");
                break;
            case 'p':
                put_number(&o, (uint64_t)va_arg(ap, void*), 16, 0, width, zero, left, "0x");
                break;
            case 'c':
                put(&o, (char)va_arg(ap, int));
                break;
            case 's': {
                const char* s = va_arg(ap, const char*);
                if (!s)
                    s = "(null)";
                int n = 0;
                while ((precision < 0 || n < precision) && s[n])
                    n++;
                if (!left)
                    for (int i = n; i < width; i++)
                        put(&o, ' ');
                for (int i = 0; i < n; i++)
                    put(&o, s[i]);
                if (left)
                    for (int i = n; i < width; i++)
                        put(&o, ' ');
                break;
            }
            case '%':
                put(&o, '%');
                break;
            case 0:
                fmt--;
                break;
            default:
                put(&o, '%');
                put(&o, c);
        }
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = 0;
    return (int)o.len;
}

int snprintf(char* buf, size_t size, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

static struct spinlock console_lock;

static int print(const char* fmt, va_list ap, int lock) {
    char buf[512];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    if (lock)
        spin_lock(&console_lock);
    serial_write(buf, len);
    if (lock)
        spin_unlock(&console_lock);
    return n;
}

int vprintf(const char* fmt, va_list ap) {
    return print(fmt, ap, 1);
}

int printf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = print(fmt, ap, 1);
    va_end(ap);
    return n;
}

int printf_unlocked(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = print(fmt, ap, 0);
    va_end(ap);
    return n;
}
