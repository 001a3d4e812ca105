#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "arch/x86/boot_params.h"
#include "arch/x86/hvm_start_info.h"

// Small synthetic kernels, so the loaders' checks run without a real kernel.
namespace vireo::x86::boot_test {

struct BzImageSpec {
    uint8_t setup_sects = 1;
    uint16_t version = 0x020f;
    uint8_t loadflags = kLoadedHigh;
    uint16_t xloadflags = kXlfKernel64;
    uint32_t init_size = 0x10000;
    uint32_t cmdline_size = 255;
    uint32_t initrd_addr_max = 0x7fffffff;
    size_t payload_size = 0x1000;
};

// Boot sector + setup sectors carrying a setup header, then a payload whose
// byte i is (i * 7) & 0xff.
inline std::vector<uint8_t> make_bzimage(const BzImageSpec& spec) {
    size_t setup_bytes = (size_t{spec.setup_sects == 0 ? 4u : spec.setup_sects} + 1) * 512;
    std::vector<uint8_t> image(setup_bytes + spec.payload_size, 0);
    SetupHeader header{};
    header.setup_sects = spec.setup_sects;
    header.syssize = static_cast<uint32_t>((spec.payload_size + 15) / 16);
    header.vid_mode = 0xffff;
    header.boot_flag = kBootFlag;
    header.jump = 0x6aeb;  // jmp short over the header, which ends at 0x202 + 0x6a
    header.header = kSetupMagic;
    header.version = spec.version;
    header.loadflags = spec.loadflags;
    header.code32_start = 0x100000;
    header.initrd_addr_max = spec.initrd_addr_max;
    header.kernel_alignment = 0x200000;
    header.relocatable_kernel = 1;
    header.xloadflags = spec.xloadflags;
    header.cmdline_size = spec.cmdline_size;
    header.init_size = spec.init_size;
    std::memcpy(image.data() + kSetupHeaderOffset, &header, sizeof(header));
    for (size_t i = 0; i < spec.payload_size; ++i) {
        image[setup_bytes + i] = static_cast<uint8_t>(i * 7);
    }
    return image;
}

struct PvhElfSpec {
    uint64_t paddr = 0x200000;
    uint64_t entry = 0x200010;
    uint64_t filesz = 0x40;
    uint64_t memsz = 0x2000;
    bool with_note = true;
    uint32_t note_desc_size = 8;  // Linux's; 4 is the other form
};

// ELF64 file layout of make_pvh_elf().
inline constexpr uint64_t kPvhLoadPhdr = sizeof(Elf64_Ehdr);
inline constexpr uint64_t kPvhNotePhdr = kPvhLoadPhdr + sizeof(Elf64_Phdr);
inline constexpr uint64_t kPvhNoteOffset = 0xb0;
inline constexpr uint64_t kPvhPayloadOffset = 0x100;

// An x86-64 ET_EXEC with one PT_LOAD (payload byte i = (i * 13) & 0xff) and a
// PT_NOTE holding a "Xen" XEN_ELFNOTE_PHYS32_ENTRY note (or a GNU note instead).
inline std::vector<uint8_t> make_pvh_elf(const PvhElfSpec& spec) {
    std::vector<uint8_t> file(kPvhPayloadOffset + spec.filesz, 0);
    Elf64_Ehdr ehdr{};
    std::memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
    ehdr.e_ident[EI_CLASS] = ELFCLASS64;
    ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
    ehdr.e_ident[EI_VERSION] = EV_CURRENT;
    ehdr.e_type = ET_EXEC;
    ehdr.e_machine = EM_X86_64;
    ehdr.e_version = EV_CURRENT;
    ehdr.e_entry = 0xffffffff81000000;  // the virtual entry, which PVH ignores
    ehdr.e_phoff = kPvhLoadPhdr;
    ehdr.e_ehsize = sizeof(Elf64_Ehdr);
    ehdr.e_phentsize = sizeof(Elf64_Phdr);
    ehdr.e_phnum = 2;
    std::memcpy(file.data(), &ehdr, sizeof(ehdr));

    Elf64_Phdr load{};
    load.p_type = PT_LOAD;
    load.p_flags = PF_R | PF_W | PF_X;
    load.p_offset = kPvhPayloadOffset;
    load.p_vaddr = spec.paddr;
    load.p_paddr = spec.paddr;
    load.p_filesz = spec.filesz;
    load.p_memsz = spec.memsz;
    load.p_align = 0x1000;
    std::memcpy(file.data() + kPvhLoadPhdr, &load, sizeof(load));

    Elf64_Nhdr nhdr{};
    nhdr.n_namesz = 4;
    nhdr.n_descsz = spec.note_desc_size;
    nhdr.n_type = spec.with_note ? kXenElfNotePhys32Entry : NT_GNU_BUILD_ID;
    std::memcpy(file.data() + kPvhNoteOffset, &nhdr, sizeof(nhdr));
    std::memcpy(file.data() + kPvhNoteOffset + sizeof(nhdr), spec.with_note ? "Xen" : "GNU", 4);
    std::memcpy(file.data() + kPvhNoteOffset + sizeof(nhdr) + 4, &spec.entry, spec.note_desc_size);

    Elf64_Phdr note{};
    note.p_type = PT_NOTE;
    note.p_flags = PF_R;
    note.p_offset = kPvhNoteOffset;
    note.p_filesz = sizeof(nhdr) + 4 + spec.note_desc_size;
    note.p_align = 4;
    std::memcpy(file.data() + kPvhNotePhdr, &note, sizeof(note));

    for (uint64_t i = 0; i < spec.filesz; ++i) {
        file[kPvhPayloadOffset + i] = static_cast<uint8_t>(i * 13);
    }
    return file;
}

template <typename T>
void patch(std::vector<uint8_t>& bytes, uint64_t offset, const T& value) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

}  // namespace vireo::x86::boot_test
