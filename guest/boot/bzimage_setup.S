/*
 * The real-mode part of a bzImage: boot sector plus one setup sector holding
 * the Linux setup header (Documentation/arch/x86/boot.rst, protocol 2.15).
 * Loaders that use the 64-bit boot protocol never run this code; a BIOS that
 * does just halts. The protected-mode payload follows at file offset 0x400
 * and is loaded at 0x100000 (64-bit entry at +0x200).
 */
        .section .setup, "ax"
        .code16
        .globl bz_setup_start
bz_setup_start:
        cli
1:      hlt
        jmp 1b

        .org 0x1f1
        .byte 1                         /* setup_sects */
        .word 0                         /* root_flags */
        .long __bz_syssize              /* syssize: payload size / 16 */
        .word 0                         /* ram_size */
        .word 0xffff                    /* vid_mode: normal */
        .word 0                         /* root_dev */
        .word 0xaa55                    /* boot_flag */
        /* 0x200 */
        .byte 0xeb, setup_code - 2f     /* jump */
2:      .ascii "HdrS"                   /* header */
        .word 0x020f                    /* version */
        .long 0                         /* realmode_swtch */
        .word 0x1000                    /* start_sys_seg */
        .word kernel_version - bz_setup_start - 0x200
        .byte 0                         /* type_of_loader */
        .byte 0x01                      /* loadflags: LOADED_HIGH */
        .word 0x8000                    /* setup_move_size */
        .long 0x100000                  /* code32_start */
        .long 0                         /* ramdisk_image */
        .long 0                         /* ramdisk_size */
        .long 0                         /* bootsect_kludge */
        .word 0                         /* heap_end_ptr */
        .byte 0                         /* ext_loader_ver */
        .byte 0                         /* ext_loader_type */
        .long 0                         /* cmd_line_ptr */
        .long 0x7fffffff                /* initrd_addr_max */
        .long 0x100000                  /* kernel_alignment */
        .byte 0                         /* relocatable_kernel */
        .byte 12                        /* min_alignment (log2) */
        .word 0x3                       /* xloadflags: KERNEL_64 | CAN_BE_LOADED_ABOVE_4G */
        .long 4095                      /* cmdline_size */
        .long 0                         /* hardware_subarch */
        .quad 0                         /* hardware_subarch_data */
        .long 0                         /* payload_offset */
        .long 0                         /* payload_length */
        .quad 0                         /* setup_data */
        .quad 0x100000                  /* pref_address */
        .long __bz_init_size            /* init_size */
        .long 0                         /* handover_offset */
        .long 0                         /* kernel_info_offset */

setup_code:
        cli
3:      hlt
        jmp 3b
kernel_version:
        .asciz "Vireo guest kit"

        .org 0x400

        .section .note.GNU-stack, "", @progbits
