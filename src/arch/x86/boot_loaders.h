#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include "arch/x86/kernel_loader.h"
#include "memory/guest_memory.h"

// The two kernel formats load_kernel() dispatches to, and what they share.
// Internal to vireo_arch.
namespace vireo::x86 {

BootInfo load_bzimage(const GuestMemory& memory, const BootRequest& request,
                      std::span<const uint8_t> kernel, uint64_t rsdp_address);
BootInfo load_pvh_elf(const GuestMemory& memory, const BootRequest& request,
                      std::span<const uint8_t> kernel, uint64_t rsdp_address);

// End of the RAM below the PCI hole: where 32-bit boot structures may go.
uint64_t low_ram_end(const GuestMemory& memory);

// Writes the NUL-terminated command line at kCmdlineAddress; refuses one
// longer than `max_length` bytes (without the NUL), naming the kernel file.
LoadedRange write_cmdline(const GuestMemory& memory, const std::filesystem::path& kernel,
                          std::string_view cmdline, uint64_t max_length);

// Reads the initrd file to the highest page-aligned address at which it ends
// at or below `end` and starts at or above `lowest`. `limit_name` says what
// bounds `end` in the error when it does not fit.
LoadedRange load_initrd(const GuestMemory& memory, const std::filesystem::path& initrd,
                        uint64_t lowest, uint64_t end, std::string_view limit_name);

}  // namespace vireo::x86
