/* GDT TSS descriptors, TSSs with a shared I/O bitmap, and the IDT. Ring 0 only. */
#include <stddef.h>
#include <stdint.h>

#include "cpu.h"
#include "io.h"

struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss) == 104, "TSS layout");

#define TSS_STRIDE 128
#define IOPB_BYTES 8192

/* All TSSs share one I/O permission bitmap (all ports allowed) placed after
 * them: each TSS's iomap_base is the distance from it to the bitmap. The CPU
 * only reads the bitmap, so sharing is safe. */
static struct {
    struct {
        struct tss tss;
        uint8_t pad[TSS_STRIDE - sizeof(struct tss)];
    } cpu[MAX_CPUS];
    uint8_t iopb[IOPB_BYTES + 1];
} tss_area __attribute__((aligned(4096)));

struct idt_gate {
    uint64_t lo, hi;
};
static struct idt_gate idt[256] __attribute__((aligned(16)));

extern uint64_t gdt[];
extern uint8_t isr_stubs[];

struct percpu percpu[MAX_CPUS];
uint8_t kstacks[MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(16)));
uint8_t ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(16)));

static void iopb_init(void) {
    /* 8-byte stores: ring-0 loops cost ~1 us per instruction here. */
    uint64_t* p = (uint64_t*)tss_area.iopb;
    for (size_t i = 0; i < IOPB_BYTES / 8; i++)
        p[i] = 0;
    tss_area.iopb[IOPB_BYTES] = 0xff;
}

void cpu_init_ring0(uint32_t index) {
    struct percpu* c = &percpu[index];
    c->self = c;
    c->index = index;
    c->kstack_top = (uint64_t)&kstacks[index][KSTACK_SIZE];
    c->ustack_top = (uint64_t)&ustacks[index][USTACK_SIZE];
    if (index == 0)
        iopb_init();

    struct tss* t = &tss_area.cpu[index].tss;
    t->rsp[0] = c->kstack_top;
    t->iomap_base = (uint16_t)((uintptr_t)tss_area.iopb - (uintptr_t)t);
    uint64_t base = (uint64_t)t;
    uint64_t limit = t->iomap_base + IOPB_BYTES; /* includes the 0xff terminator */
    uint64_t* d = &gdt[TSS_SELECTOR(index) / 8];
    d[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
           (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    d[1] = base >> 32;
    asm volatile("ltr %w0" ::"r"((uint16_t)TSS_SELECTOR(index)));
    wrmsr(0xc0000101, (uint64_t)c); /* GS base */
}

void idt_build(void) {
    for (int v = 0; v < 256; v++) {
        uint64_t off = (uint64_t)isr_stubs + 16 * v;
        idt[v].lo = (off & 0xffff) | ((uint64_t)KERNEL_CS << 16) | (0x8eull << 40) |
                    (((off >> 16) & 0xffff) << 48);
        idt[v].hi = off >> 32;
    }
}

void idt_load(void) {
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) d = {sizeof(idt) - 1, (uint64_t)idt};
    asm volatile("lidt %0" ::"m"(d));
}
