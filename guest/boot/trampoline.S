/*
 * AP start-up code. The BSP copies [trampoline_start, trampoline_end) to
 * TRAMPOLINE_ADDR and sends SIPI vector TRAMPOLINE_ADDR >> 12. The AP goes
 * real mode -> 32-bit protected mode -> long mode on the BSP's page tables,
 * then jumps to ap_entry64 in the image.
 */
#include "layout.h"

#define T(label) (TRAMPOLINE_ADDR + (label) - trampoline_start)

        .section .rodata.trampoline, "a"
        .code16
        .globl trampoline_start, trampoline_end
trampoline_start:
        cli
        movw %cs, %ax
        movw %ax, %ds
        lgdtl tramp_gdt_desc - trampoline_start
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmpl $0x08, $T(tramp32)

        .code32
tramp32:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl %cr4, %eax
        orl $0x20, %eax
        movl %eax, %cr4
        movl $boot_pml4, %eax
        movl %eax, %cr3
        movl $0xc0000080, %ecx
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000000, %eax
        movl %eax, %cr0
        ljmp $0x18, $T(tramp64)

        .code64
tramp64:
        movl $ap_entry64, %eax
        jmp *%rax

        .balign 8
tramp_gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        /* 0x08 code, 32-bit */
        .quad 0x00cf92000000ffff        /* 0x10 data */
        .quad 0x00af9a000000ffff        /* 0x18 code, 64-bit */
tramp_gdt_desc:
        .word tramp_gdt_desc - tramp_gdt - 1
        .long T(tramp_gdt)
trampoline_end:

        .section .note.GNU-stack, "", @progbits
