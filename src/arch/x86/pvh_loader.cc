// PVH boot: an ELF64 kernel entered in 32-bit protected mode at the address
// its XEN_ELFNOTE_PHYS32_ENTRY note gives, with %ebx pointing at
// hvm_start_info (Xen public/arch-x86/hvm/start_info.h, docs/misc/pvh.pandoc).
#include <elf.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "arch/x86/boot_loaders.h"
#include "arch/x86/e820.h"
#include "arch/x86/hvm_start_info.h"
#include "arch/x86/layout.h"
#include "base/error.h"

namespace vireo::x86 {

namespace {

// hvm_start_info, then the module list, then the memory map, in one page.
constexpr uint64_t kModlistAddress = kPvhStartInfoAddress + 0x40;
constexpr uint64_t kMemmapAddress = kPvhStartInfoAddress + 0x80;
constexpr uint64_t kStartInfoAreaEnd = kPvhStartInfoAddress + 0x1000;
static_assert(kModlistAddress >= kPvhStartInfoAddress + sizeof(HvmStartInfo));
static_assert(kMemmapAddress >= kModlistAddress + sizeof(HvmModlistEntry));
static_assert(kStartInfoAreaEnd <= kZeroPageAddress);

constexpr char kXenNoteName[] = "Xen";  // with its NUL, as the note stores it

// [offset, offset + size) lies within a file of `file_size` bytes, without overflow.
bool within_file(uint64_t offset, uint64_t size, uint64_t file_size) {
    return offset <= file_size && size <= file_size - offset;
}

template <typename T>
T read_at(std::span<const uint8_t> bytes, uint64_t offset) {
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

uint64_t align_up(uint64_t value, uint64_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

// The entry address in the segment's notes, if one is the PVH entry note.
std::optional<uint64_t> find_pvh_entry(std::span<const uint8_t> notes, uint64_t alignment) {
    uint64_t offset = 0;
    while (notes.size() - offset >= sizeof(Elf64_Nhdr)) {
        auto header = read_at<Elf64_Nhdr>(notes, offset);
        uint64_t name_offset = offset + sizeof(Elf64_Nhdr);
        uint64_t desc_offset = name_offset + align_up(header.n_namesz, alignment);
        uint64_t next = desc_offset + align_up(header.n_descsz, alignment);
        if (desc_offset > notes.size() || next > notes.size()) {
            return std::nullopt;  // a note running past its segment ends the walk
        }
        bool is_xen =
            header.n_namesz == sizeof(kXenNoteName) &&
            std::memcmp(notes.data() + name_offset, kXenNoteName, sizeof(kXenNoteName)) == 0;
        if (is_xen && header.n_type == kXenElfNotePhys32Entry) {
            // Linux stores the entry as a 64-bit value (_ASM_PTR), others as 32-bit.
            if (header.n_descsz == 8) {
                return read_at<uint64_t>(notes, desc_offset);
            }
            if (header.n_descsz == 4) {
                return read_at<uint32_t>(notes, desc_offset);
            }
        }
        offset = next;
    }
    return std::nullopt;
}

}  // namespace

BootInfo load_pvh_elf(const GuestMemory& memory, const BootRequest& request,
                      std::span<const uint8_t> kernel, uint64_t rsdp_address) {
    const std::string name = request.kernel.string();
    if (kernel.size() < sizeof(Elf64_Ehdr)) {
        fail("kernel {}: truncated ELF: {} bytes, smaller than an ELF64 header", name,
             kernel.size());
    }
    const auto ehdr = read_at<Elf64_Ehdr>(kernel, 0);
    if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_ident[EI_DATA] != ELFDATA2LSB) {
        fail("kernel {}: ELF is not 64-bit little-endian (class {}, data {})", name,
             ehdr.e_ident[EI_CLASS], ehdr.e_ident[EI_DATA]);
    }
    if (ehdr.e_machine != EM_X86_64 || ehdr.e_type != ET_EXEC) {
        fail("kernel {}: ELF is not an x86-64 executable (e_machine {}, e_type {})", name,
             ehdr.e_machine, ehdr.e_type);
    }
    if (ehdr.e_phnum == 0 || ehdr.e_phentsize != sizeof(Elf64_Phdr) ||
        !within_file(ehdr.e_phoff, uint64_t{ehdr.e_phnum} * sizeof(Elf64_Phdr), kernel.size())) {
        fail(
            "kernel {}: ELF program headers ({} x {} bytes at {:#x}) are not within the file "
            "({} bytes)",
            name, ehdr.e_phnum, ehdr.e_phentsize, ehdr.e_phoff, kernel.size());
    }
    std::vector<Elf64_Phdr> phdrs(ehdr.e_phnum);
    for (size_t i = 0; i < phdrs.size(); ++i) {
        phdrs[i] = read_at<Elf64_Phdr>(kernel, ehdr.e_phoff + i * sizeof(Elf64_Phdr));
        if ((phdrs[i].p_type == PT_LOAD || phdrs[i].p_type == PT_NOTE) &&
            !within_file(phdrs[i].p_offset, phdrs[i].p_filesz, kernel.size())) {
            fail(
                "kernel {}: truncated ELF: segment {} (file offset {:#x}, {} bytes) extends "
                "beyond the file's end at {:#x}",
                name, i, phdrs[i].p_offset, phdrs[i].p_filesz, kernel.size());
        }
    }

    std::optional<uint64_t> entry;
    for (const Elf64_Phdr& phdr : phdrs) {
        if (phdr.p_type == PT_NOTE && !entry) {
            entry = find_pvh_entry(kernel.subspan(phdr.p_offset, phdr.p_filesz),
                                   phdr.p_align == 8 ? 8 : 4);
        }
    }
    if (!entry) {
        fail(
            "kernel {}: ELF without a PVH entry note (PT_NOTE \"Xen\" type {}, "
            "XEN_ELFNOTE_PHYS32_ENTRY); not bootable with PVH",
            name, kXenElfNotePhys32Entry);
    }

    // Check every segment before writing any.
    uint64_t kernel_start = std::numeric_limits<uint64_t>::max();
    uint64_t kernel_end = 0;
    bool entry_loaded = false;
    for (size_t i = 0; i < phdrs.size(); ++i) {
        const Elf64_Phdr& phdr = phdrs[i];
        if (phdr.p_type != PT_LOAD) {
            continue;
        }
        if (phdr.p_filesz > phdr.p_memsz) {
            fail("kernel {}: ELF segment {} has p_filesz {} larger than p_memsz {}", name, i,
                 phdr.p_filesz, phdr.p_memsz);
        }
        if (phdr.p_memsz == 0) {
            continue;  // an empty segment loads nothing, wherever it says it goes
        }
        if (phdr.p_paddr < kKernelLoadAddress || !memory.contains(phdr.p_paddr, phdr.p_memsz)) {
            fail(
                "kernel {}: ELF segment {} at [{:#x}, +{:#x}) does not fit in guest RAM from "
                "{:#x} ({} bytes of RAM)",
                name, i, phdr.p_paddr, phdr.p_memsz, kKernelLoadAddress, memory.total_size());
        }
        kernel_start = std::min(kernel_start, phdr.p_paddr);
        kernel_end = std::max(kernel_end, phdr.p_paddr + phdr.p_memsz);
        entry_loaded |= *entry >= phdr.p_paddr && *entry - phdr.p_paddr < phdr.p_filesz;
    }
    if (kernel_end == 0) {
        fail("kernel {}: ELF has no PT_LOAD segment to load", name);
    }
    if (!entry_loaded || *entry > std::numeric_limits<uint32_t>::max()) {
        fail("kernel {}: PVH entry {:#x} is not inside a loaded segment below 4 GiB", name, *entry);
    }
    const LoadedRange cmdline =
        write_cmdline(memory, request.kernel, request.cmdline, kCmdlineMaxSize - 1);
    for (const Elf64_Phdr& phdr : phdrs) {
        if (phdr.p_type != PT_LOAD || phdr.p_memsz == 0) {
            continue;
        }
        std::span<uint8_t> target = *memory.span(phdr.p_paddr, phdr.p_memsz);
        std::memcpy(target.data(), kernel.data() + phdr.p_offset, phdr.p_filesz);
        memory.zero(phdr.p_paddr + phdr.p_filesz, phdr.p_memsz - phdr.p_filesz);
    }

    std::optional<LoadedRange> initrd;
    if (request.initrd) {
        initrd =
            load_initrd(memory, *request.initrd, kernel_end, low_ram_end(memory), "the PCI hole");
    }

    HvmStartInfo start_info{};
    start_info.magic = kHvmStartMagic;
    start_info.version = kHvmStartInfoVersion;
    start_info.cmdline_paddr = cmdline.address;
    start_info.rsdp_paddr = rsdp_address;
    if (initrd) {
        HvmModlistEntry module{initrd->address, initrd->size, 0, 0};
        start_info.nr_modules = 1;
        start_info.modlist_paddr = kModlistAddress;
        if (!memory.write_object(kModlistAddress, module)) {
            fail("guest RAM does not hold the PVH module list at {:#x}", kModlistAddress);
        }
    }
    const std::vector<E820Entry> map = e820_map(memory.total_size());
    std::vector<HvmMemmapTableEntry> memmap;
    for (const E820Entry& entry_e820 : map) {
        memmap.push_back({entry_e820.address, entry_e820.size, entry_e820.type, 0});
    }
    const uint64_t memmap_bytes = memmap.size() * sizeof(HvmMemmapTableEntry);
    if (kMemmapAddress + memmap_bytes > kStartInfoAreaEnd ||
        !memory.write(kMemmapAddress, memmap.data(), memmap_bytes)) {
        fail("guest RAM does not hold the PVH memory map at {:#x}", kMemmapAddress);
    }
    start_info.memmap_paddr = kMemmapAddress;
    start_info.memmap_entries = static_cast<uint32_t>(memmap.size());
    if (!memory.write_object(kPvhStartInfoAddress, start_info)) {
        fail("guest RAM does not hold hvm_start_info at {:#x}", kPvhStartInfoAddress);
    }

    BootInfo info;
    info.format = KernelFormat::kPvhElf;
    info.kernel = {kernel_start, kernel_end - kernel_start};
    info.initrd = initrd;
    info.cmdline = cmdline;
    info.entry = *entry;
    info.boot_params = kPvhStartInfoAddress;
    info.cpu = protected_mode_boot_state(memory, info.entry);
    info.cpu.rbx = kPvhStartInfoAddress;
    return info;
}

}  // namespace vireo::x86
