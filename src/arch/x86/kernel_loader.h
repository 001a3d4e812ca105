#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "arch/x86/boot_cpu_state.h"
#include "memory/guest_memory.h"

namespace vireo::x86 {

enum class KernelFormat {
    kBzImage,  // Linux boot protocol >= 2.06 with a 64-bit entry (XLF_KERNEL_64)
    kPvhElf,   // ELF64 with a XEN_ELFNOTE_PHYS32_ENTRY note
};

std::string_view to_string(KernelFormat format);

struct BootRequest {
    std::filesystem::path kernel;
    std::optional<std::filesystem::path> initrd;
    std::string cmdline;
};

struct LoadedRange {
    uint64_t address = 0;
    uint64_t size = 0;

    bool operator==(const LoadedRange&) const = default;
};

// What a loader put where, for the VMM to log, and the boot vCPU's entry state.
struct BootInfo {
    KernelFormat format = KernelFormat::kBzImage;
    LoadedRange kernel;  // bytes copied from the kernel file
    std::optional<LoadedRange> initrd;
    LoadedRange cmdline;  // includes the terminating NUL
    uint64_t entry = 0;
    uint64_t boot_params = 0;  // zero page (bzImage) or hvm_start_info (PVH)
    BootCpuState cpu;
};

// What a kernel file is, from its first bytes: fails naming the file when it
// is missing, a directory, unreadable, or neither a bzImage nor a PVH ELF.
// Needs no guest and no KVM, so a bad --kernel is refused before either exists.
KernelFormat identify_kernel(const std::filesystem::path& path);

// Fails naming `what` and the path unless it is a regular file this process
// can read ("initrd /x: no such file", "... is a directory, not a file").
void require_readable_file(const std::filesystem::path& path, std::string_view what);

// Loads request.kernel, a bzImage or a PVH ELF told apart by their contents,
// with its initrd and command line into guest RAM laid out by ram_ranges(
// memory.total_size()), writes the boot structures (zero page or
// hvm_start_info, e820 map, GDT, page tables) and returns the entry state.
// `rsdp_address` is where write_acpi_tables() put the RSDP. Throws
// vireo::Error naming the file and the reason for anything it cannot boot.
BootInfo load_kernel(const GuestMemory& memory, const BootRequest& request, uint64_t rsdp_address);

// The same with the kernel file already read: request.kernel only names it in
// errors. The initrd is still read from request.initrd.
BootInfo load_kernel(const GuestMemory& memory, const BootRequest& request,
                     std::span<const uint8_t> kernel_bytes, uint64_t rsdp_address);

}  // namespace vireo::x86
