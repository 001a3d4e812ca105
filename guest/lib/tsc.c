#include "tsc.h"

#include "io.h"
#include "ring0.h"

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

struct pvclock_vcpu_time_info {
    uint32_t version;
    uint32_t pad0;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint8_t flags;
    uint8_t pad[2];
};

static struct pvclock_vcpu_time_info pvclock __attribute__((aligned(64)));
static uint64_t khz;
static const char* source = "none";
static int probed;

/* kvmclock: ns = ((tsc << shift) * mul) >> 32, so kHz = 10^6 * 2^32 / mul / 2^shift. */
static uint64_t kvmclock_khz(void) {
    if (r0_wrmsr_safe(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)&pvclock | 1))
        return 0;
    uint32_t version, mul;
    int8_t shift;
    int tries = 0;
    do {
        version = pvclock.version;
        barrier();
        mul = pvclock.tsc_to_system_mul;
        shift = pvclock.tsc_shift;
        barrier();
    } while ((version & 1 || version != pvclock.version || !mul) && ++tries < 1000000);
    r0_wrmsr_safe(MSR_KVM_SYSTEM_TIME_NEW, 0);
    if (!mul)
        return 0;
    uint64_t k = (1000000ull << 32) / mul;
    return shift >= 0 ? k >> shift : k << -shift;
}

uint64_t tsc_khz(void) {
    if (probed)
        return khz;
    probed = 1;
    struct cpuid_regs r = cpuid(0, 0);
    if (r.a >= 0x15) {
        struct cpuid_regs t = cpuid(0x15, 0);
        if (t.a && t.b && t.c) {
            khz = (uint64_t)t.c * t.b / t.a / 1000;
            source = "cpuid15";
            return khz;
        }
    }
    struct cpuid_regs h = cpuid(0x40000000, 0);
    if (h.a >= 0x40000010 && h.a < 0x40000100) {
        struct cpuid_regs t = cpuid(0x40000010, 0);
        if (t.a) {
            khz = t.a;
            source = "cpuid40000010";
            return khz;
        }
    }
    khz = kvmclock_khz();
    if (khz)
        source = "kvmclock";
    return khz;
}

const char* tsc_khz_source(void) {
    tsc_khz();
    return source;
}

static uint64_t khz_or_guess(void) {
    uint64_t k = tsc_khz();
    return k ? k : 1000000;
}

uint64_t time_us(void) {
    return rdtsc() * 1000 / khz_or_guess();
}

uint64_t cycles_to_ns(uint64_t cycles) {
    return cycles * 1000000 / khz_or_guess();
}

void delay_us(uint64_t us) {
    uint64_t end = rdtsc() + us * khz_or_guess() / 1000;
    while (rdtsc() < end)
        cpu_relax();
}
