#include "cmdline.h"

#include "boot_info.h"
#include "string.h"

/* Finds `key` as a whole word (followed by '=' or a word end); returns the
 * position after the key, or NULL. */
static const char* find_key(const char* key) {
    size_t klen = strlen(key);
    const char* p = boot_info.cmdline;
    while (*p) {
        while (*p == ' ')
            p++;
        const char* word = p;
        while (*p && *p != ' ')
            p++;
        if ((size_t)(p - word) >= klen && !strncmp(word, key, klen) &&
            (word[klen] == '=' || word + klen == p))
            return word + klen;
    }
    return NULL;
}

bool cmdline_has(const char* key) {
    return find_key(key) != NULL;
}

bool cmdline_get(const char* key, char* buf, size_t size) {
    const char* v = find_key(key);
    if (!v || !size)
        return false;
    if (*v == '=')
        v++;
    size_t n = 0;
    while (v[n] && v[n] != ' ' && n + 1 < size) {
        buf[n] = v[n];
        n++;
    }
    buf[n] = 0;
    return true;
}

bool parse_u64(const char* s, uint64_t* out) {
    uint64_t v = 0;
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        base = 16, s += 2;
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = *s - 'A' + 10;
        else
            return false;
        v = v * base + d;
    }
    *out = v;
    return true;
}

uint64_t cmdline_u64(const char* key, uint64_t fallback) {
    char buf[32];
    uint64_t v;
    if (!cmdline_get(key, buf, sizeof(buf)) || !parse_u64(buf, &v))
        return fallback;
    return v;
}
