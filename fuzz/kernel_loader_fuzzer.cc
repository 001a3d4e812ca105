// Feeds arbitrary bytes to the kernel loader as a kernel file: it must either
// load them or refuse them with vireo::Error, never crash or touch memory
// outside guest RAM (ASan watches).
#include <cstddef>
#include <cstdint>
#include <span>

#include "arch/x86/kernel_loader.h"
#include "arch/x86/layout.h"
#include "base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // 32 MiB: room for small kernels, small enough that "does not fit" paths run too.
    static const vireo::GuestMemory memory =
        vireo::GuestMemory::create(vireo::x86::ram_ranges(32 << 20));
    const vireo::x86::BootRequest request{"fuzz-input", {}, "console=ttyS0"};
    try {
        vireo::x86::load_kernel(memory, request, std::span<const uint8_t>(data, size),
                                vireo::x86::kAcpiTablesAddress);
    } catch (const vireo::Error&) {
        // A refusal is a correct answer to a bad kernel.
    }
    return 0;
}
