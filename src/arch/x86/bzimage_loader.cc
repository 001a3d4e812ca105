// The Linux x86 boot protocol, 64-bit entry (Documentation/arch/x86/boot.rst).
#include <algorithm>
#include <cstring>

#include "arch/x86/boot_loaders.h"
#include "arch/x86/boot_params.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo::x86 {

namespace {

constexpr uint16_t kMinimumVersion = 0x0206;  // cmdline_size appeared in 2.06
constexpr uint16_t kInitSizeVersion = 0x020a;
constexpr uint64_t kHeaderLengthOffset =
    0x201;  // the jump's offset byte: header ends at 0x202 + it
constexpr uint64_t kHeaderMinimumEnd = kSetupHeaderOffset + offsetof(SetupHeader, hardware_subarch);
constexpr uint64_t kHeaderMaximumEnd = offsetof(BootParams, edd_mbr_sig_buffer);
constexpr uint8_t kDefaultSetupSects = 4;  // setup_sects 0 means 4 (boot.rst)
constexpr uint64_t kEntry64Offset = 0x200;
// End of the real-mode heap, which the 64-bit entry never uses; boot.rst's value for a
// loader that puts the command line above the setup code.
constexpr uint16_t kHeapEndPtr = 0xfe00;

}  // namespace

BootInfo load_bzimage(const GuestMemory& memory, const BootRequest& request,
                      std::span<const uint8_t> kernel, uint64_t rsdp_address) {
    const std::string name = request.kernel.string();
    const uint64_t file_size = kernel.size();
    if (file_size <= kHeaderLengthOffset) {
        fail("kernel {}: truncated bzImage: {} bytes, the setup header alone needs more", name,
             file_size);
    }
    const uint64_t header_end = 0x202 + uint64_t{kernel[kHeaderLengthOffset]};
    if (header_end > file_size) {
        fail("kernel {}: truncated bzImage: the setup header ends at {:#x}, the file at {:#x}",
             name, header_end, file_size);
    }
    if (header_end < kHeaderMinimumEnd || header_end > kHeaderMaximumEnd) {
        fail("kernel {}: setup header ends at {:#x}, outside the protocol's [{:#x}, {:#x}]", name,
             header_end, kHeaderMinimumEnd, kHeaderMaximumEnd);
    }
    // The header as the kernel wrote it; fields past its end read as zero, bytes past
    // the fields this loader knows (a newer protocol's) are only passed on.
    SetupHeader header{};
    std::memcpy(&header, kernel.data() + kSetupHeaderOffset,
                std::min<uint64_t>(header_end - kSetupHeaderOffset, sizeof(header)));

    // fail() binds references to its arguments: it gets copies of the packed
    // header's fields, which may sit misaligned.
    if (header.boot_flag != kBootFlag) {
        fail("kernel {}: boot sector flag is {:#06x}, not {:#06x}", name,
             uint16_t{header.boot_flag}, kBootFlag);
    }
    if (header.version < kMinimumVersion) {
        fail("kernel {}: boot protocol {}.{:02} is older than 2.06, the oldest supported", name,
             header.version >> 8, header.version & 0xff);
    }
    if ((header.xloadflags & kXlfKernel64) == 0) {
        fail(
            "kernel {}: 32-bit-only bzImage (XLF_KERNEL_64 not set in xloadflags {:#x}); a "
            "64-bit kernel is required",
            name, uint16_t{header.xloadflags});
    }
    if ((header.loadflags & kLoadedHigh) == 0) {
        fail("kernel {}: not loaded high (LOADED_HIGH clear: a zImage), not supported", name);
    }

    const uint64_t setup_sects = header.setup_sects == 0 ? kDefaultSetupSects : header.setup_sects;
    const uint64_t kernel_offset = (setup_sects + 1) * kSectorSize;
    if (kernel_offset >= file_size) {
        fail(
            "kernel {}: truncated bzImage: {} setup sectors end at {:#x}, beyond the file's "
            "end at {:#x}",
            name, setup_sects, kernel_offset, file_size);
    }
    const uint64_t kernel_size = file_size - kernel_offset;
    // syssize counts 16-byte paragraphs, rounded up.
    const uint64_t declared_size = uint64_t{header.syssize} * 16;
    if (declared_size > kernel_size + 15) {
        fail(
            "kernel {}: truncated bzImage: syssize says {} bytes of protected-mode code, the "
            "file has {}",
            name, declared_size, kernel_size);
    }

    const uint64_t low_end = low_ram_end(memory);
    const uint64_t init_size = header.version >= kInitSizeVersion ? header.init_size : 0;
    const uint64_t needed = std::max(kernel_size, init_size);
    if (kKernelLoadAddress + needed > low_end) {
        fail(
            "kernel {}: needs {} bytes of RAM from {:#x} (file {} bytes, init_size {}), guest "
            "RAM below the PCI hole ends at {:#x}",
            name, needed, kKernelLoadAddress, kernel_size, init_size, low_end);
    }
    const LoadedRange cmdline =
        write_cmdline(memory, request.kernel, request.cmdline, header.cmdline_size);
    if (!memory.write(kKernelLoadAddress, kernel.data() + kernel_offset, kernel_size)) {
        fail("kernel {}: guest RAM does not hold [{:#x}, {:#x})", name, kKernelLoadAddress,
             kKernelLoadAddress + kernel_size);
    }

    std::optional<LoadedRange> initrd;
    if (request.initrd) {
        uint64_t end = std::min(low_end, uint64_t{header.initrd_addr_max} + 1);
        initrd = load_initrd(memory, *request.initrd, kKernelLoadAddress + needed, end,
                             end == low_end ? "the PCI hole" : "the kernel's initrd_addr_max");
    }

    BootParams params{};
    std::memcpy(reinterpret_cast<uint8_t*>(&params) + kSetupHeaderOffset,
                kernel.data() + kSetupHeaderOffset, header_end - kSetupHeaderOffset);
    params.hdr.type_of_loader = kLoaderTypeUndefined;
    params.hdr.loadflags |= kCanUseHeap;
    params.hdr.heap_end_ptr = kHeapEndPtr;
    params.hdr.cmd_line_ptr = static_cast<uint32_t>(cmdline.address);
    params.ext_cmd_line_ptr = static_cast<uint32_t>(cmdline.address >> 32);
    if (initrd) {
        params.hdr.ramdisk_image = static_cast<uint32_t>(initrd->address);
        params.ext_ramdisk_image = static_cast<uint32_t>(initrd->address >> 32);
        params.hdr.ramdisk_size = static_cast<uint32_t>(initrd->size);
        params.ext_ramdisk_size = static_cast<uint32_t>(initrd->size >> 32);
    }
    params.acpi_rsdp_addr = rsdp_address;
    const std::vector<E820Entry> map = e820_map(memory.total_size());
    params.e820_entries = static_cast<uint8_t>(map.size());
    for (size_t i = 0; i < map.size(); ++i) {
        params.e820_table[i] = {map[i].address, map[i].size, map[i].type};
    }
    if (!memory.write_object(kZeroPageAddress, params)) {
        fail("guest RAM does not hold the zero page at {:#x}", kZeroPageAddress);
    }

    BootInfo info;
    info.format = KernelFormat::kBzImage;
    info.kernel = {kKernelLoadAddress, kernel_size};
    info.initrd = initrd;
    info.cmdline = cmdline;
    info.entry = kKernelLoadAddress + kEntry64Offset;
    info.boot_params = kZeroPageAddress;
    info.cpu = long_mode_boot_state(memory, info.entry);
    info.cpu.rsi = kZeroPageAddress;
    return info;
}

}  // namespace vireo::x86
