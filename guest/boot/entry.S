/*
 * Boot entry points. Every path ends in the same 64-bit code with our own
 * GDT and page tables, then calls kernel_init_bsp(kind, boot_ptr).
 *
 *   0x100000  Linux 32-bit entry (code32_start), %esi = boot_params
 *   0x100200  Linux 64-bit entry, %rsi = boot_params
 *   pvh_entry32 (ELF note XEN_ELFNOTE_PHYS32_ENTRY), %ebx = hvm_start_info
 *
 * Ring-0 code runs emulated on the target hosts (~1 us per instruction), so
 * the page tables and the GDT are built by the assembler, not by loops.
 */
#include "layout.h"

#define PTE_P 0x1
#define PTE_RW 0x2
#define PTE_US 0x4
#define PTE_PS 0x80
#define PTE_TABLE (PTE_P | PTE_RW | PTE_US)

        .section .head, "ax"
        .code32
        .globl linux_entry32
linux_entry32:
        movl $BOOT_KIND_LINUX, boot_kind
        movl %esi, boot_ptr
        jmp long_mode_setup

        .org 0x200
        .code64
        .globl linux_entry64
linux_entry64:
        cli
        movl $BOOT_KIND_LINUX, boot_kind(%rip)
        movq %rsi, boot_ptr(%rip)
        movl $boot_pml4, %eax
        movq %rax, %cr3
        lgdt gdt_desc(%rip)
        pushq $KERNEL_CS
        leaq entry64(%rip), %rax
        pushq %rax
        lretq

        .text
        .code32
        .globl pvh_entry32
pvh_entry32:
        movl $BOOT_KIND_PVH, boot_kind
        movl %ebx, boot_ptr
        /* fall through */

long_mode_setup:
        cli
        lgdt gdt_desc
        movw $KERNEL_DS, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl %cr4, %eax
        orl $0x20, %eax                 /* PAE */
        movl %eax, %cr4
        movl $boot_pml4, %eax
        movl %eax, %cr3
        movl $0xc0000080, %ecx          /* EFER */
        rdmsr
        orl $0x100, %eax                /* LME */
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax           /* PG | PE */
        movl %eax, %cr0
        ljmp $KERNEL_CS, $entry64

        .code64
entry64:
        xorl %eax, %eax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        movw $KERNEL_DS, %ax
        movw %ax, %ss
        movq $(kstacks + KSTACK_SIZE), %rsp
        movl boot_kind(%rip), %edi
        movq boot_ptr(%rip), %rsi
        call kernel_init_bsp
1:      hlt
        jmp 1b

/* Application processors arrive here from the real-mode trampoline. */
        .globl ap_entry64
ap_entry64:
        movq ap_boot_stack(%rip), %rsp
        lgdt gdt_desc(%rip)
        pushq $KERNEL_CS
        leaq 2f(%rip), %rax
        pushq %rax
        lretq
2:      xorl %eax, %eax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        movw $KERNEL_DS, %ax
        movw %ax, %ss
        call kernel_init_ap
3:      hlt
        jmp 3b

/* enter_user(fn, user_rsp, arg): iretq to ring 3, interrupts enabled. */
        .globl enter_user
enter_user:
        pushq $USER_DS
        pushq %rsi
        pushq $0x202
        pushq $USER_CS
        pushq %rdi
        movq %rdx, %rdi
        iretq

        .data
        .balign 8
        .globl boot_kind, boot_ptr
boot_kind:
        .long 0
        .long 0
boot_ptr:
        .quad 0

        .balign 16
        .globl gdt, gdt_desc
gdt:
        .quad 0
        .quad 0x00af9a000000ffff        /* 0x08 kernel code, 64-bit */
        .quad 0x00cf92000000ffff        /* 0x10 kernel data */
        .quad 0x00cff2000000ffff        /* 0x18 user data */
        .quad 0x00affa000000ffff        /* 0x20 user code, 64-bit */
        .fill 2 * MAX_CPUS, 8, 0        /* 0x28 one TSS descriptor per CPU */
gdt_end:
        .balign 8
gdt_desc:                               /* also valid as a 6-byte 32-bit lgdt operand */
        .word gdt_end - gdt - 1
        .quad gdt

/* Identity map of the low 4 GiB, 2 MiB pages, user-accessible. */
        .section .data.pagetables, "aw"
        .balign 4096
        .globl boot_pml4
boot_pml4:
        .quad boot_pdpt + PTE_TABLE
        .fill 511, 8, 0
boot_pdpt:
        .quad boot_pd + PTE_TABLE
        .quad boot_pd + 0x1000 + PTE_TABLE
        .quad boot_pd + 0x2000 + PTE_TABLE
        .quad boot_pd + 0x3000 + PTE_TABLE
        .fill 508, 8, 0
boot_pd:
        .set i, 0
        .rept 512 * IDENTITY_MAP_GIB
        .quad (i << 21) + (PTE_P | PTE_RW | PTE_US | PTE_PS)
        .set i, i + 1
        .endr

        .section .note.Xen, "a"
        .balign 4
        .long 4                         /* name size */
        .long 4                         /* desc size */
        .long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .long pvh_entry32

        .section .note.GNU-stack, "", @progbits
