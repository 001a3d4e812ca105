#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "arch/x86/e820.h"
#include "arch/x86/hvm_start_info.h"
#include "arch/x86/kernel_loader.h"
#include "arch/x86/layout.h"
#include "base/error.h"
#include "boot_state_checks.h"
#include "boot_test_files.h"
#include "test_kernels.h"

namespace vireo::x86 {
namespace {

using boot_test::kMiB;
using boot_test::make_pvh_elf;
using boot_test::patch;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint64_t kRsdp = 0xe0000;

class PvhLoader : public ::testing::Test {
protected:
    std::string refusal(std::span<const uint8_t> elf) {
        path_ = dir_.write("vmlinux", elf);
        try {
            load_kernel(memory_, {path_, {}, ""}, kRsdp);
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    }

    boot_test::TempDir dir_;
    GuestMemory memory_ = GuestMemory::create(ram_ranges(64 * kMiB));
    std::filesystem::path path_;
};

TEST_F(PvhLoader, LoadsSegmentsAndWritesStartInfo) {
    std::vector<uint8_t> elf = make_pvh_elf({});
    std::vector<uint8_t> initrd(10000, 0x5a);
    BootRequest request{dir_.write("vmlinux", elf), dir_.write("initrd", initrd), "console=hvc0"};
    // Stale bytes where the bss goes: the loader must zero them.
    std::vector<uint8_t> stale(0x2000, 0xaa);
    ASSERT_TRUE(memory_.write(0x200000, stale.data(), stale.size()));

    BootInfo info = load_kernel(memory_, request, kRsdp);

    EXPECT_EQ(info.format, KernelFormat::kPvhElf);
    EXPECT_EQ(info.kernel, (LoadedRange{0x200000, 0x2000}));
    EXPECT_EQ(info.entry, 0x200010u);
    std::vector<uint8_t> loaded(0x2000);
    ASSERT_TRUE(memory_.read(0x200000, loaded.data(), loaded.size()));
    EXPECT_TRUE(std::equal(loaded.begin(), loaded.begin() + 0x40,
                           elf.begin() + boot_test::kPvhPayloadOffset));
    EXPECT_TRUE(std::all_of(loaded.begin() + 0x40, loaded.end(), [](uint8_t b) { return b == 0; }))
        << "bss zeroed";

    auto start = *memory_.read_object<HvmStartInfo>(kPvhStartInfoAddress);
    EXPECT_EQ(start.magic, 0x336ec578u);
    EXPECT_EQ(start.version, 1u);
    EXPECT_EQ(start.rsdp_paddr, kRsdp);
    EXPECT_EQ(start.cmdline_paddr, kCmdlineAddress);
    EXPECT_EQ(info.cmdline, (LoadedRange{kCmdlineAddress, 13}));
    char cmdline[13];
    ASSERT_TRUE(memory_.read(start.cmdline_paddr, cmdline, sizeof(cmdline)));
    EXPECT_STREQ(cmdline, "console=hvc0");

    ASSERT_EQ(start.nr_modules, 1u);
    auto module = *memory_.read_object<HvmModlistEntry>(start.modlist_paddr);
    ASSERT_TRUE(info.initrd.has_value());
    EXPECT_EQ(module.paddr, info.initrd->address);
    EXPECT_EQ(module.size, initrd.size());
    EXPECT_EQ(module.paddr % 4096, 0u);
    EXPECT_GE(module.paddr, 0x202000u) << "above the kernel";
    EXPECT_EQ(module.paddr, (64 * kMiB - initrd.size()) & ~0xfffull) << "as high as possible";
    std::vector<uint8_t> initrd_loaded(initrd.size());
    ASSERT_TRUE(memory_.read(module.paddr, initrd_loaded.data(), initrd_loaded.size()));
    EXPECT_EQ(initrd_loaded, initrd);

    std::vector<E820Entry> map = e820_map(64 * kMiB);
    ASSERT_EQ(start.memmap_entries, map.size());
    for (size_t i = 0; i < map.size(); ++i) {
        auto entry = *memory_.read_object<HvmMemmapTableEntry>(start.memmap_paddr +
                                                               i * sizeof(HvmMemmapTableEntry));
        EXPECT_EQ(entry.addr, map[i].address);
        EXPECT_EQ(entry.size, map[i].size);
        EXPECT_EQ(entry.type, map[i].type);
        EXPECT_EQ(entry.reserved, 0u);
    }
    // start_info, modules and memory map stay clear of the zero page and GDT.
    EXPECT_LE(start.memmap_paddr + map.size() * sizeof(HvmMemmapTableEntry), kZeroPageAddress);

    EXPECT_EQ(info.cpu.rip, 0x200010u);
    EXPECT_EQ(info.cpu.rbx, kPvhStartInfoAddress);
    EXPECT_EQ(info.boot_params, kPvhStartInfoAddress);
    EXPECT_EQ(info.cpu.cr0 & kCr0Pg, 0u) << "paging off";
    EXPECT_EQ(info.cpu.cr0 & kCr0Pe, kCr0Pe);
    EXPECT_EQ(info.cpu.efer, 0u);
    EXPECT_TRUE(info.cpu.cs.db);
    EXPECT_FALSE(info.cpu.cs.l);
    EXPECT_EQ(info.cpu.rflags, 0x2u);
    boot_test::expect_gdt_matches(memory_, info.cpu);
}

TEST_F(PvhLoader, AcceptsA32BitEntryNoteWithoutInitrd) {
    std::vector<uint8_t> elf = make_pvh_elf({.note_desc_size = 4});
    BootInfo info = load_kernel(memory_, {dir_.write("vmlinux", elf), {}, ""}, kRsdp);
    EXPECT_EQ(info.entry, 0x200010u);
    EXPECT_FALSE(info.initrd.has_value());
    EXPECT_EQ(memory_.read_object<HvmStartInfo>(kPvhStartInfoAddress)->nr_modules, 0u);
}

TEST_F(PvhLoader, RefusesElfWithoutPvhNote) {
    EXPECT_THAT(refusal(make_pvh_elf({.with_note = false})),
                AllOf(HasSubstr(path_.string()), HasSubstr("ELF without a PVH entry note")));
}

TEST_F(PvhLoader, RefusesNonX86Elf) {
    std::vector<uint8_t> elf = make_pvh_elf({});
    patch<uint16_t>(elf, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);
    EXPECT_THAT(refusal(elf), AllOf(HasSubstr(path_.string()), HasSubstr("not an x86-64")));
}

TEST_F(PvhLoader, RefusesElf32) {
    std::vector<uint8_t> elf = make_pvh_elf({});
    elf[EI_CLASS] = ELFCLASS32;
    EXPECT_THAT(refusal(elf), AllOf(HasSubstr(path_.string()), HasSubstr("not 64-bit")));
}

TEST_F(PvhLoader, RefusesTruncatedElfHeader) {
    std::vector<uint8_t> elf = make_pvh_elf({});
    elf.resize(40);
    EXPECT_THAT(refusal(elf), AllOf(HasSubstr(path_.string()), HasSubstr("truncated ELF")));
}

TEST_F(PvhLoader, RefusesProgramHeadersBeyondTheFile) {
    std::vector<uint8_t> elf = make_pvh_elf({});
    patch<uint64_t>(elf, offsetof(Elf64_Ehdr, e_phoff), elf.size() - 8);
    EXPECT_THAT(refusal(elf), AllOf(HasSubstr(path_.string()), HasSubstr("program headers")));
}

TEST_F(PvhLoader, RefusesSegmentBeyondFileEnd) {
    std::vector<uint8_t> elf = make_pvh_elf({});
    patch<uint64_t>(elf, boot_test::kPvhLoadPhdr + offsetof(Elf64_Phdr, p_filesz), 0x1000);
    EXPECT_THAT(refusal(elf), AllOf(HasSubstr(path_.string()), HasSubstr("segment 0"),
                                    HasSubstr("beyond the file's end")));
    // An offset so large that offset + size wraps around.
    elf = make_pvh_elf({});
    patch<uint64_t>(elf, boot_test::kPvhLoadPhdr + offsetof(Elf64_Phdr, p_offset), ~0ull - 8);
    EXPECT_THAT(refusal(elf), HasSubstr("beyond the file's end"));
}

TEST_F(PvhLoader, RefusesFileSizeLargerThanMemorySize) {
    std::vector<uint8_t> elf = make_pvh_elf({.filesz = 0x40, .memsz = 0x20});
    EXPECT_THAT(refusal(elf),
                AllOf(HasSubstr(path_.string()), HasSubstr("p_filesz 64 larger than p_memsz 32")));
}

TEST_F(PvhLoader, RefusesEmptyMemorySizeWithFileBytes) {
    EXPECT_THAT(refusal(make_pvh_elf({.filesz = 0x40, .memsz = 0})),
                HasSubstr("p_filesz 64 larger than p_memsz 0"));
}

TEST_F(PvhLoader, IgnoresEmptySegmentsBelow1MiB) {
    // A third, empty PT_LOAD below 1 MiB (as linkers leave for an empty output
    // section) loads nothing. Its header goes where the note was; the note moves
    // right behind it.
    std::vector<uint8_t> elf = make_pvh_elf({});
    constexpr uint64_t third_phdr = boot_test::kPvhNoteOffset;
    constexpr uint64_t moved_note = third_phdr + sizeof(Elf64_Phdr);
    std::vector<uint8_t> note(elf.begin() + boot_test::kPvhNoteOffset,
                              elf.begin() + boot_test::kPvhNoteOffset + 24);
    std::copy(note.begin(), note.end(), elf.begin() + moved_note);
    Elf64_Phdr empty{};
    empty.p_type = PT_LOAD;
    empty.p_paddr = 0xffc00;
    patch(elf, third_phdr, empty);
    patch<uint64_t>(elf, boot_test::kPvhNotePhdr + offsetof(Elf64_Phdr, p_offset), moved_note);
    patch<uint16_t>(elf, offsetof(Elf64_Ehdr, e_phnum), 3);
    EXPECT_EQ(refusal(elf), "");
}

TEST_F(PvhLoader, RefusesSegmentOutsideRam) {
    // 64 MiB of RAM: a bss reaching past it.
    EXPECT_THAT(refusal(make_pvh_elf({.memsz = 64 * kMiB})),
                AllOf(HasSubstr(path_.string()), HasSubstr("does not fit in guest RAM")));
    // Over the boot structures below 1 MiB.
    EXPECT_THAT(refusal(make_pvh_elf({.paddr = 0x8000, .entry = 0x8010})),
                HasSubstr("does not fit in guest RAM from 0x100000"));
}

TEST_F(PvhLoader, RefusesEntryOutsideTheLoadedCode) {
    EXPECT_THAT(refusal(make_pvh_elf({.entry = 0x100000000})),
                AllOf(HasSubstr(path_.string()), HasSubstr("PVH entry 0x100000000")));
    EXPECT_THAT(refusal(make_pvh_elf({.entry = 0x200040})), HasSubstr("not inside a loaded"));
}

TEST_F(PvhLoader, RefusesCommandLineTooLong) {
    std::vector<uint8_t> elf = make_pvh_elf({});
    path_ = dir_.write("vmlinux", elf);
    EXPECT_THAT(
        [&] {
            load_kernel(memory_, {path_, {}, std::string(kCmdlineMaxSize, 'c')}, kRsdp);
        },
        ::testing::ThrowsMessage<Error>(
            AllOf(HasSubstr(path_.string()), HasSubstr("command line is"))));
}

TEST_F(PvhLoader, RefusesInitrdTooLarge) {
    std::vector<uint8_t> initrd(63 * kMiB);
    std::filesystem::path initrd_path = dir_.write("initrd", initrd);
    path_ = dir_.write("vmlinux", make_pvh_elf({}));
    EXPECT_THAT(
        [&] {
            load_kernel(memory_, {path_, initrd_path, ""}, kRsdp);
        },
        ::testing::ThrowsMessage<Error>(
            AllOf(HasSubstr("initrd " + initrd_path.string()), HasSubstr("do not fit"))));
}

}  // namespace
}  // namespace vireo::x86
