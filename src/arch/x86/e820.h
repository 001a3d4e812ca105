#pragma once

#include <cstdint>
#include <vector>

namespace vireo::x86 {

struct E820Entry {
    uint64_t address;
    uint64_t size;
    uint32_t type;  // kE820Ram or kE820Reserved (boot_params.h)

    bool operator==(const E820Entry&) const = default;
};

// The guest's memory map for `ram_size` bytes of RAM laid out by ram_ranges()
// (layout.h), sorted by address: usable RAM below the EBDA, the EBDA and legacy
// hole reserved (the RSDP and ACPI tables live there), usable RAM from 1 MiB to
// the PCI hole, the PCI ECAM reserved (Linux trusts MCFG only then), and the
// rest of RAM above 4 GiB. Both kernel loaders hand this map to the guest.
// Throws vireo::Error if ram_size leaves no RAM above 1 MiB.
std::vector<E820Entry> e820_map(uint64_t ram_size);

}  // namespace vireo::x86
