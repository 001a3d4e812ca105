#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "arch/x86/boot_params.h"
#include "arch/x86/e820.h"
#include "arch/x86/kernel_loader.h"
#include "arch/x86/layout.h"
#include "base/error.h"
#include "boot_state_checks.h"
#include "boot_test_files.h"
#include "test_kernels.h"

namespace vireo::x86 {
namespace {

using boot_test::kMiB;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint64_t kRsdp = 0xe0000;

std::vector<uint8_t> pattern(size_t size, uint8_t seed) {
    std::vector<uint8_t> bytes(size);
    for (size_t i = 0; i < size; ++i) {
        bytes[i] = static_cast<uint8_t>(i * 31 + seed + (i >> 12));
    }
    return bytes;
}

std::string read_cstring(const GuestMemory& memory, uint64_t address) {
    std::string out;
    for (char c; (c = static_cast<char>(*memory.read_object<uint8_t>(address))) != 0; ++address) {
        out.push_back(c);
    }
    return out;
}

// What a Linux kernel reads from a zero page, checked against the file and request.
void expect_zero_page(const GuestMemory& memory, std::span<const uint8_t> file,
                      const BootRequest& request, const BootInfo& info) {
    auto params = *memory.read_object<BootParams>(kZeroPageAddress);
    SetupHeader original;
    std::memcpy(&original, file.data() + kSetupHeaderOffset, sizeof(original));

    // The header is the file's, but for the fields a loader writes.
    SetupHeader expected = original;
    expected.type_of_loader = 0xff;
    expected.loadflags = original.loadflags | kCanUseHeap;
    expected.heap_end_ptr = 0xfe00;
    expected.cmd_line_ptr = static_cast<uint32_t>(kCmdlineAddress);
    if (info.initrd) {
        expected.ramdisk_image = static_cast<uint32_t>(info.initrd->address);
        expected.ramdisk_size = static_cast<uint32_t>(info.initrd->size);
    }
    size_t header_length = 0x202 + file[0x201] - kSetupHeaderOffset;
    EXPECT_EQ(std::memcmp(&params.hdr, &expected, header_length), 0);
    // Copies of the packed structs' multi-byte fields (here and below): most sit
    // misaligned for the references gtest binds to its arguments.
    EXPECT_EQ(uint32_t{params.hdr.header}, kSetupMagic);
    EXPECT_EQ(uint16_t{params.hdr.version}, uint16_t{original.version});
    EXPECT_EQ(params.hdr.setup_sects, original.setup_sects);
    EXPECT_EQ(uint32_t{params.hdr.init_size}, uint32_t{original.init_size});
    EXPECT_EQ(params.ext_cmd_line_ptr, 0u);
    EXPECT_EQ(params.ext_ramdisk_image, 0u);
    EXPECT_EQ(params.acpi_rsdp_addr, kRsdp);
    EXPECT_EQ(params.sentinel, 0) << "a clean zero page, not the boot sector's bytes";

    EXPECT_EQ(read_cstring(memory, params.hdr.cmd_line_ptr), request.cmdline);
    EXPECT_EQ(info.cmdline, (LoadedRange{kCmdlineAddress, request.cmdline.size() + 1}));

    std::vector<E820Entry> map = e820_map(memory.total_size());
    ASSERT_EQ(params.e820_entries, map.size());
    for (size_t i = 0; i < map.size(); ++i) {
        EXPECT_EQ(uint64_t{params.e820_table[i].addr}, map[i].address);
        EXPECT_EQ(uint64_t{params.e820_table[i].size}, map[i].size);
        EXPECT_EQ(params.e820_table[i].type, map[i].type);
    }
}

void expect_64bit_entry(const GuestMemory& memory, const BootInfo& info) {
    EXPECT_EQ(info.entry, 0x100000u + 0x200u);
    EXPECT_EQ(info.cpu.rip, info.entry);
    EXPECT_EQ(info.cpu.rsi, kZeroPageAddress);
    EXPECT_EQ(info.boot_params, kZeroPageAddress);
    EXPECT_EQ(info.cpu.efer, kEferLme | kEferLma);
    EXPECT_EQ(info.cpu.cr3, kPageTablesAddress);
    EXPECT_EQ(info.cpu.cs.selector, 0x10);
    EXPECT_EQ(info.cpu.ds.selector, 0x18);
    EXPECT_EQ(info.cpu.rflags, 0x2u);
    boot_test::expect_gdt_matches(memory, info.cpu);
    for (uint64_t va : {0ull, 0x100000ull, 0x3fffffffull, 0xfffff000ull}) {
        EXPECT_EQ(boot_test::translate(memory, info.cpu.cr3, va), va);
    }
}

TEST(BzImageLoader, LoadsASyntheticBzImage) {
    boot_test::TempDir dir;
    std::vector<uint8_t> image = boot_test::make_bzimage({.setup_sects = 0});  // 0 means 4
    BootRequest request{dir.write("bzImage", image), dir.write("initrd", pattern(5000, 3)),
                        "console=ttyS0"};
    GuestMemory memory = GuestMemory::create(ram_ranges(32 * kMiB));
    BootInfo info = load_kernel(memory, request, kRsdp);

    EXPECT_EQ(info.format, KernelFormat::kBzImage);
    EXPECT_EQ(info.kernel, (LoadedRange{0x100000, 0x1000}));
    std::vector<uint8_t> loaded(0x1000);
    ASSERT_TRUE(memory.read(0x100000, loaded.data(), loaded.size()));
    EXPECT_TRUE(std::equal(loaded.begin(), loaded.end(), image.begin() + 5 * 512));
    ASSERT_TRUE(info.initrd.has_value());
    EXPECT_EQ(info.initrd->address, 32 * kMiB - 0x2000) << "page-aligned at the top of RAM";
    expect_zero_page(memory, image, request, info);
    expect_64bit_entry(memory, info);
}

TEST(BzImageLoader, InitrdStaysBelowInitrdAddrMax) {
    boot_test::TempDir dir;
    std::vector<uint8_t> image = boot_test::make_bzimage({.initrd_addr_max = 0x17fffff});
    BootRequest request{dir.write("bzImage", image), dir.write("initrd", pattern(4096, 1)), ""};
    GuestMemory memory = GuestMemory::create(ram_ranges(64 * kMiB));
    BootInfo info = load_kernel(memory, request, kRsdp);
    ASSERT_TRUE(info.initrd.has_value());
    EXPECT_EQ(info.initrd->address, 0x1800000u - 4096);
}

TEST(BzImageLoader, PassesOnHeaderBytesOfANewerProtocol) {
    // A setup header running to 0x28f, past the last field this loader knows.
    boot_test::TempDir dir;
    std::vector<uint8_t> image = boot_test::make_bzimage({});
    image[0x201] = 0x8d;
    image[0x28e] = 0x42;
    GuestMemory memory = GuestMemory::create(ram_ranges(32 * kMiB));
    load_kernel(memory, {dir.write("bzImage", image), {}, ""}, kRsdp);
    EXPECT_EQ(memory.read_object<uint8_t>(kZeroPageAddress + 0x28e), 0x42);
    EXPECT_EQ(memory.read_object<uint32_t>(kZeroPageAddress + 0x290), 0u)
        << "nothing beyond the header";

    image[0x201] = 0x8f;  // would end at 0x291, over edd_mbr_sig_buffer
    EXPECT_THAT(
        [&] {
            load_kernel(memory, {dir.write("bzImage", image), {}, ""}, kRsdp);
        },
        ::testing::ThrowsMessage<Error>(HasSubstr("setup header ends at 0x291")));
}

class DebianKernel : public ::testing::Test {
protected:
    void SetUp() override {
        std::optional<std::filesystem::path> found = boot_test::debian_vmlinuz();
        if (!found) {
            GTEST_SKIP() << boot_test::kNoVmlinuzMessage;
        }
        path_ = *found;
        bytes_ = boot_test::read_file(path_);
        ASSERT_GT(bytes_.size(), 1 * kMiB) << path_;
    }
    std::filesystem::path path_;
    std::vector<uint8_t> bytes_;
};

TEST_F(DebianKernel, LoadsWithInitrdAndCommandLine) {
    boot_test::TempDir dir;
    std::vector<uint8_t> initrd_bytes = pattern(3 * kMiB + 123, 7);
    BootRequest request{path_, dir.write("initrd.img", initrd_bytes),
                        "console=ttyS0 root=/dev/vda rw panic=-1"};
    constexpr uint64_t ram = 256 * kMiB;
    GuestMemory memory = GuestMemory::create(ram_ranges(ram));
    BootInfo info = load_kernel(memory, request, kRsdp);

    EXPECT_EQ(info.format, KernelFormat::kBzImage);
    uint64_t setup_sects = bytes_[0x1f1] == 0 ? 4 : bytes_[0x1f1];
    uint64_t offset = (setup_sects + 1) * 512;
    EXPECT_EQ(info.kernel, (LoadedRange{0x100000, bytes_.size() - offset}));
    std::vector<uint8_t> loaded(bytes_.size() - offset);
    ASSERT_TRUE(memory.read(0x100000, loaded.data(), loaded.size()));
    EXPECT_TRUE(std::equal(loaded.begin(), loaded.end(), bytes_.begin() + offset));

    expect_zero_page(memory, bytes_, request, info);
    expect_64bit_entry(memory, info);

    auto params = *memory.read_object<BootParams>(kZeroPageAddress);
    ASSERT_TRUE(info.initrd.has_value());
    EXPECT_EQ(info.initrd->size, initrd_bytes.size());
    EXPECT_EQ(info.initrd->address % 4096, 0u);
    EXPECT_GE(info.initrd->address, 0x100000u + params.hdr.init_size) << "above init_size";
    EXPECT_LE(info.initrd->address + info.initrd->size, ram);
    EXPECT_GT(info.initrd->address + info.initrd->size, ram - 4096) << "as high as possible";
    std::vector<uint8_t> initrd_loaded(initrd_bytes.size());
    ASSERT_TRUE(memory.read(info.initrd->address, initrd_loaded.data(), initrd_loaded.size()));
    EXPECT_EQ(initrd_loaded, initrd_bytes);
}

TEST_F(DebianKernel, TruncatedKernelIsRefused) {
    boot_test::TempDir dir;
    GuestMemory memory = GuestMemory::create(ram_ranges(256 * kMiB));
    std::vector<uint8_t> half(bytes_.begin(), bytes_.begin() + bytes_.size() / 2);
    std::filesystem::path cut = dir.write("vmlinuz-half", half);
    EXPECT_THAT(
        [&] {
            load_kernel(memory, {cut, {}, ""}, kRsdp);
        },
        ::testing::ThrowsMessage<Error>(
            AllOf(HasSubstr(cut.string()), HasSubstr("truncated"), HasSubstr("syssize"))));

    std::vector<uint8_t> setup_only(bytes_.begin(), bytes_.begin() + 0x1000);
    std::filesystem::path short_file = dir.write("vmlinuz-setup", setup_only);
    EXPECT_THAT(
        [&] {
            load_kernel(memory, {short_file, {}, ""}, kRsdp);
        },
        ::testing::ThrowsMessage<Error>(AllOf(HasSubstr(short_file.string()),
                                              HasSubstr("setup sectors"),
                                              HasSubstr("beyond the file's end"))));
}

TEST_F(DebianKernel, NeedsRamForItsInitSize) {
    GuestMemory memory = GuestMemory::create(ram_ranges(32 * kMiB));
    EXPECT_THAT(
        [&] {
            load_kernel(memory, {path_, {}, ""}, kRsdp);
        },
        ::testing::ThrowsMessage<Error>(AllOf(HasSubstr(path_.string()), HasSubstr("init_size"))));
}

TEST_F(DebianKernel, RefusesCommandLineLongerThanCmdlineSize) {
    uint32_t cmdline_size;
    std::memcpy(&cmdline_size, bytes_.data() + 0x238, sizeof(cmdline_size));
    GuestMemory memory = GuestMemory::create(ram_ranges(256 * kMiB));
    EXPECT_NO_THROW(load_kernel(memory, {path_, {}, std::string(cmdline_size, 'x')}, kRsdp));
    EXPECT_THAT(
        [&] {
            load_kernel(memory, {path_, {}, std::string(cmdline_size + 1, 'x')}, kRsdp);
        },
        ::testing::ThrowsMessage<Error>(AllOf(HasSubstr(path_.string()),
                                              HasSubstr("command line is"),
                                              HasSubstr(std::to_string(cmdline_size)))));
}

TEST_F(DebianKernel, RefusesInitrdTooLargeForRam) {
    boot_test::TempDir dir;
    std::filesystem::path initrd = dir.path() / "huge.img";
    { std::ofstream create(initrd); }
    std::filesystem::resize_file(initrd, 100 * kMiB);  // sparse: never read
    GuestMemory memory = GuestMemory::create(ram_ranges(128 * kMiB));
    EXPECT_THAT(
        [&] {
            load_kernel(memory, {path_, initrd, ""}, kRsdp);
        },
        ::testing::ThrowsMessage<Error>(
            AllOf(HasSubstr("initrd " + initrd.string()), HasSubstr("do not fit"))));
}

}  // namespace
}  // namespace vireo::x86
