#include "arch/x86/e820.h"

#include <algorithm>

#include "arch/x86/boot_params.h"
#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo::x86 {

std::vector<E820Entry> e820_map(uint64_t ram_size) {
    if (ram_size <= kKernelLoadAddress) {
        fail("guest RAM of {} bytes leaves nothing above 1 MiB for a kernel", ram_size);
    }
    uint64_t low_end = std::min(ram_size, kLowRamEnd);
    std::vector<E820Entry> map = {
        {0, kEbdaStart, kE820Ram},
        {kEbdaStart, kLegacyHoleEnd - kEbdaStart, kE820Reserved},
        {kLegacyHoleEnd, low_end - kLegacyHoleEnd, kE820Ram},
        {kPciEcamStart, kPciEcamSize, kE820Reserved},
    };
    if (ram_size > low_end) {
        map.push_back({kHighRamStart, ram_size - low_end, kE820Ram});
    }
    return map;
}

}  // namespace vireo::x86
