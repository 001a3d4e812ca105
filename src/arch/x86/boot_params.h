#pragma once

#include <cstddef>
#include <cstdint>

// The Linux x86 boot protocol ABI (Documentation/arch/x86/boot.rst and
// zero-page.rst; arch/x86/include/uapi/asm/bootparam.h): the setup header a
// bzImage carries at file offset 0x1f1 and the "zero page" a loader hands the
// kernel. Plain packed structs; the offsets below are the documented ones.
namespace vireo::x86 {

inline constexpr uint16_t kBootFlag = 0xAA55;        // setup_header.boot_flag
inline constexpr uint32_t kSetupMagic = 0x53726448;  // "HdrS"
inline constexpr uint64_t kSetupHeaderOffset = 0x1f1;
inline constexpr uint64_t kSectorSize = 512;

// loadflags
inline constexpr uint8_t kLoadedHigh = 1 << 0;
inline constexpr uint8_t kCanUseHeap = 1 << 7;
// xloadflags
inline constexpr uint16_t kXlfKernel64 = 1 << 0;
inline constexpr uint16_t kXlfCanBeLoadedAbove4G = 1 << 1;

inline constexpr uint8_t kLoaderTypeUndefined = 0xff;
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;
inline constexpr size_t kE820MaxEntriesZeroPage = 128;

#pragma pack(push, 1)

struct SetupHeader {
    uint8_t setup_sects;
    uint16_t root_flags;
    uint32_t syssize;
    uint16_t ram_size;
    uint16_t vid_mode;
    uint16_t root_dev;
    uint16_t boot_flag;
    uint16_t jump;
    uint32_t header;
    uint16_t version;
    uint32_t realmode_swtch;
    uint16_t start_sys_seg;
    uint16_t kernel_version;
    uint8_t type_of_loader;
    uint8_t loadflags;
    uint16_t setup_move_size;
    uint32_t code32_start;
    uint32_t ramdisk_image;
    uint32_t ramdisk_size;
    uint32_t bootsect_kludge;
    uint16_t heap_end_ptr;
    uint8_t ext_loader_ver;
    uint8_t ext_loader_type;
    uint32_t cmd_line_ptr;
    uint32_t initrd_addr_max;
    uint32_t kernel_alignment;
    uint8_t relocatable_kernel;
    uint8_t min_alignment;
    uint16_t xloadflags;
    uint32_t cmdline_size;
    uint32_t hardware_subarch;
    uint64_t hardware_subarch_data;
    uint32_t payload_offset;
    uint32_t payload_length;
    uint64_t setup_data;
    uint64_t pref_address;
    uint32_t init_size;
    uint32_t handover_offset;
    uint32_t kernel_info_offset;
};

struct BootE820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

// The zero page. Only the fields a loader fills are named; the rest (screen,
// APM, EDD, EFI information) stays zero for a VM without firmware.
struct BootParams {
    uint8_t screen_info[0x40];
    uint8_t apm_bios_info[0x14];
    uint8_t pad2[4];
    uint64_t tboot_addr;
    uint8_t ist_info[0x10];
    uint64_t acpi_rsdp_addr;
    uint8_t pad3[8];
    uint8_t hd0_info[16];
    uint8_t hd1_info[16];
    uint8_t sys_desc_table[16];
    uint8_t olpc_ofw_header[16];
    uint32_t ext_ramdisk_image;
    uint32_t ext_ramdisk_size;
    uint32_t ext_cmd_line_ptr;
    uint8_t pad4[112];
    uint32_t cc_blob_address;
    uint8_t edid_info[0x80];
    uint8_t efi_info[0x20];
    uint32_t alt_mem_k;
    uint32_t scratch;
    uint8_t e820_entries;
    uint8_t eddbuf_entries;
    uint8_t edd_mbr_sig_buf_entries;
    uint8_t kbd_status;
    uint8_t secure_boot;
    uint8_t pad5[2];
    uint8_t sentinel;
    uint8_t pad6[1];
    SetupHeader hdr;
    uint8_t pad7[0x290 - 0x1f1 - sizeof(SetupHeader)];
    uint32_t edd_mbr_sig_buffer[16];
    BootE820Entry e820_table[kE820MaxEntriesZeroPage];
    uint8_t pad8[48];
    uint8_t eddbuf[0x1ec];
    uint8_t pad9[276];
};

#pragma pack(pop)

// setup_header: offsets are those of boot.rst, relative to the zero page / file.
#define VIREO_HDR_AT(field, offset) \
    static_assert(kSetupHeaderOffset + offsetof(SetupHeader, field) == (offset))
VIREO_HDR_AT(setup_sects, 0x1f1);
VIREO_HDR_AT(root_flags, 0x1f2);
VIREO_HDR_AT(syssize, 0x1f4);
VIREO_HDR_AT(vid_mode, 0x1fa);
VIREO_HDR_AT(boot_flag, 0x1fe);
VIREO_HDR_AT(jump, 0x200);
VIREO_HDR_AT(header, 0x202);
VIREO_HDR_AT(version, 0x206);
VIREO_HDR_AT(type_of_loader, 0x210);
VIREO_HDR_AT(loadflags, 0x211);
VIREO_HDR_AT(code32_start, 0x214);
VIREO_HDR_AT(ramdisk_image, 0x218);
VIREO_HDR_AT(ramdisk_size, 0x21c);
VIREO_HDR_AT(heap_end_ptr, 0x224);
VIREO_HDR_AT(ext_loader_ver, 0x226);
VIREO_HDR_AT(cmd_line_ptr, 0x228);
VIREO_HDR_AT(initrd_addr_max, 0x22c);
VIREO_HDR_AT(kernel_alignment, 0x230);
VIREO_HDR_AT(relocatable_kernel, 0x234);
VIREO_HDR_AT(xloadflags, 0x236);
VIREO_HDR_AT(cmdline_size, 0x238);
VIREO_HDR_AT(hardware_subarch, 0x23c);
VIREO_HDR_AT(payload_offset, 0x248);
VIREO_HDR_AT(setup_data, 0x250);
VIREO_HDR_AT(pref_address, 0x258);
VIREO_HDR_AT(init_size, 0x260);
VIREO_HDR_AT(handover_offset, 0x264);
VIREO_HDR_AT(kernel_info_offset, 0x268);
#undef VIREO_HDR_AT
static_assert(sizeof(SetupHeader) == 0x26c - 0x1f1);

static_assert(sizeof(BootE820Entry) == 20);

// zero-page.rst
static_assert(offsetof(BootParams, tboot_addr) == 0x058);
static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(BootParams, ext_ramdisk_image) == 0x0c0);
static_assert(offsetof(BootParams, ext_ramdisk_size) == 0x0c4);
static_assert(offsetof(BootParams, ext_cmd_line_ptr) == 0x0c8);
static_assert(offsetof(BootParams, cc_blob_address) == 0x13c);
static_assert(offsetof(BootParams, edid_info) == 0x140);
static_assert(offsetof(BootParams, efi_info) == 0x1c0);
static_assert(offsetof(BootParams, alt_mem_k) == 0x1e0);
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, sentinel) == 0x1ef);
static_assert(offsetof(BootParams, hdr) == 0x1f1);
static_assert(offsetof(BootParams, edd_mbr_sig_buffer) == 0x290);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);
static_assert(offsetof(BootParams, eddbuf) == 0xd00);
static_assert(sizeof(BootParams) == 4096);

}  // namespace vireo::x86
