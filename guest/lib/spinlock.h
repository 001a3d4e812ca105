/* A test-and-set spinlock (xchg), usable in ring 0 and ring 3. */
#pragma once

#include "io.h"

struct spinlock {
    volatile int locked;
};

static inline void spin_lock(struct spinlock* l) {
    while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE)) {
        while (l->locked)
            cpu_relax();
    }
}

static inline void spin_unlock(struct spinlock* l) {
    __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}
