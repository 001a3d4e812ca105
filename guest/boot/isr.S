/*
 * 256 interrupt stubs, 16 bytes apart, all ending in trap_common, which saves
 * the general registers as a struct trap_frame and calls trap_dispatch().
 * #UD first checks for a ring-0 call (ud2 + RING0_CALL_MAGIC): that path
 * saves nothing, since ring0_call() declares every caller-saved register
 * clobbered; each instruction here costs ~1 us on the hosts we test on.
 */
#include "layout.h"

        .text
        .balign 16
        .globl isr_stubs
isr_stubs:
        .set v, 0
        .rept 256
        .balign 16
        /* the CPU pushes an error code for these vectors */
        .if v == 6
        jmp ud_entry
        .elseif (v == 8) || (v >= 10 && v <= 14) || (v == 17) || (v == 21) || (v == 29) || (v == 30)
        pushq $v
        .else
        pushq $0
        pushq $v
        .endif
        jmp trap_common
        .set v, v + 1
        .endr

/* ring0_call: %rdi = fn, %rsi = arg; result in %rax; returns past the marker. */
ud_entry:
        pushq %rax
        movq 8(%rsp), %rax              /* faulting rip */
        cmpw $0x0b0f, (%rax)            /* ud2 */
        jne 1f
        cmpl $RING0_CALL_MAGIC, 2(%rax)
        jne 1f
        addq $6, 8(%rsp)
        movq %rdi, %rax
        movq %rsi, %rdi
        movq %rax, (%rsp)               /* the saved-rax slot keeps the stack 16-byte aligned for the call */
        call *(%rsp)
        addq $8, %rsp
        iretq
1:      popq %rax
        pushq $0
        pushq $6
        jmp trap_common

trap_common:
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, %rdi
        cld
        call trap_dispatch
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp
        iretq

        .section .note.GNU-stack, "", @progbits
