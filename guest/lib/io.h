/* Port I/O, MMIO and a few CPU instructions that are safe in ring 0 and ring 3. */
#pragma once

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v) {
    asm volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v) {
    asm volatile("outw %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v) {
    asm volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
    uint8_t v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint16_t inw(uint16_t port) {
    uint16_t v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint32_t inl(uint16_t port) {
    uint32_t v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* MMIO through volatile pointers: one access of exactly the given width. */
static inline uint8_t mmio_read8(uint64_t a) {
    return *(volatile uint8_t*)a;
}
static inline uint16_t mmio_read16(uint64_t a) {
    return *(volatile uint16_t*)a;
}
static inline uint32_t mmio_read32(uint64_t a) {
    return *(volatile uint32_t*)a;
}
static inline void mmio_write8(uint64_t a, uint8_t v) {
    *(volatile uint8_t*)a = v;
}
static inline void mmio_write16(uint64_t a, uint16_t v) {
    *(volatile uint16_t*)a = v;
}
static inline void mmio_write32(uint64_t a, uint32_t v) {
    *(volatile uint32_t*)a = v;
}
/* Two 32-bit writes, low half first, as virtio allows for 64-bit fields. */
static inline void mmio_write64(uint64_t a, uint64_t v) {
    mmio_write32(a, (uint32_t)v);
    mmio_write32(a + 4, (uint32_t)(v >> 32));
}

#define barrier() asm volatile("" ::: "memory")
/* Full fence without SSE2 (mfence is not safe in emulated ring 0). */
static inline void mb(void) {
    asm volatile("lock addl $0, (%%rsp)" ::: "memory", "cc");
}

static inline void cpu_relax(void) {
    asm volatile("pause" ::: "memory");
}

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

struct cpuid_regs {
    uint32_t a, b, c, d;
};
static inline struct cpuid_regs cpuid(uint32_t leaf, uint32_t subleaf) {
    struct cpuid_regs r;
    asm volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(subleaf));
    return r;
}

/* Ring 0 only (call them through ring0_call from test code). */
static inline uint64_t rdmsr(uint32_t msr) {
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
    asm volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}
