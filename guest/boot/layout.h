/* Constants shared by the boot assembly and the C runtime. */
#pragma once

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_DS (0x18 | 3)
#define USER_CS (0x20 | 3)
#define TSS_SELECTOR(cpu) (0x28 + 16 * (cpu))

#define MAX_CPUS 64
#define GDT_ENTRIES (5 + 2 * MAX_CPUS)

#define KSTACK_SIZE 16384
#define USTACK_SIZE 65536

/* Real-mode AP start-up code is copied here (SIPI vector 0x08). */
#define TRAMPOLINE_ADDR 0x8000

/* Identity map of the low 4 GiB with 2 MiB pages, all user-accessible. */
#define IDENTITY_MAP_GIB 4

/* Marker after `ud2` that asks the #UD handler for a ring-0 call. */
#define RING0_CALL_MAGIC 0x30474952 /* "RIG0" */

#define BOOT_KIND_PVH 1
#define BOOT_KIND_LINUX 2

#define PVH_START_MAGIC 0x336ec578
