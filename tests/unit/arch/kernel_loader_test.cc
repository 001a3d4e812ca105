#include "arch/x86/kernel_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "arch/x86/layout.h"
#include "base/error.h"
#include "boot_test_files.h"
#include "test_kernels.h"

namespace vireo::x86 {
namespace {

using boot_test::kMiB;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint64_t kRsdp = 0xe0000;

class KernelLoader : public ::testing::Test {
protected:
    // Loads `bytes` written to a file `name`; returns the Error's message ("" if it loaded).
    std::string refusal(const std::string& name, std::span<const uint8_t> bytes,
                        std::optional<std::filesystem::path> initrd = {},
                        std::string cmdline = "") {
        last_path_ = dir_.write(name, bytes);
        try {
            load_kernel(memory_, {last_path_, std::move(initrd), std::move(cmdline)}, kRsdp);
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    }

    boot_test::TempDir dir_;
    GuestMemory memory_ = GuestMemory::create(ram_ranges(16 * kMiB));
    std::filesystem::path last_path_;
};

TEST_F(KernelLoader, RefusesMissingKernel) {
    std::filesystem::path missing = dir_.path() / "no-such-kernel";
    EXPECT_THAT(
        [&] {
            load_kernel(memory_, {missing, {}, ""}, kRsdp);
        },
        ::testing::ThrowsMessage<Error>(
            AllOf(HasSubstr("kernel " + missing.string()), HasSubstr("no such file"))));
}

TEST_F(KernelLoader, IdentifiesBothFormatsFromTheirFirstBytes) {
    EXPECT_EQ(identify_kernel(dir_.write("bz", boot_test::make_bzimage({}))),
              KernelFormat::kBzImage);
    std::vector<uint8_t> elf = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
    elf.resize(4096);
    EXPECT_EQ(identify_kernel(dir_.write("elf", elf)), KernelFormat::kPvhElf);
}

TEST_F(KernelLoader, IdentifyNamesWhatIsWrongWithTheFile) {
    auto message = [](const std::filesystem::path& path) {
        try {
            identify_kernel(path);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(message(dir_.path()),
              "kernel " + dir_.path().string() + ": is a directory, not a file");
    EXPECT_EQ(message(dir_.path() / "none"),
              "kernel " + (dir_.path() / "none").string() + ": no such file");
    std::string text(5000, 'x');
    std::filesystem::path not_kernel = dir_.write(
        "notes.txt", std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
    EXPECT_THAT(message(not_kernel), HasSubstr(": not a Linux bzImage or a PVH ELF"));
    EXPECT_THAT(message(dir_.write("empty", {})), HasSubstr(": file is empty"));
    EXPECT_THROW(require_readable_file(dir_.path(), "initrd"), Error);
    EXPECT_NO_THROW(require_readable_file(not_kernel, "initrd"));
}

TEST_F(KernelLoader, RefusesEmptyFile) {
    std::string message = refusal("empty", {});
    EXPECT_THAT(message, AllOf(HasSubstr(last_path_.string()), HasSubstr("empty")));
}

TEST_F(KernelLoader, RefusesTooSmallFile) {
    std::vector<uint8_t> tiny = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    std::string message = refusal("tiny", tiny);
    EXPECT_THAT(message,
                AllOf(HasSubstr(last_path_.string()), HasSubstr("not a Linux bzImage or a PVH ELF"),
                      HasSubstr("only 10 bytes")));
}

TEST_F(KernelLoader, RefusesRandomBytes) {
    std::mt19937 random(42);
    std::vector<uint8_t> noise(64 * 1024);
    for (uint8_t& b : noise) {
        b = static_cast<uint8_t>(random());
    }
    std::string message = refusal("noise", noise);
    EXPECT_THAT(
        message,
        AllOf(HasSubstr(last_path_.string()),
              HasSubstr("not a Linux bzImage or a PVH ELF (no 'HdrS' magic and no ELF header)")));
}

TEST_F(KernelLoader, RefusesMissingBootFlag) {
    std::vector<uint8_t> image = boot_test::make_bzimage({});
    boot_test::patch<uint16_t>(image, 0x1fe, 0);
    EXPECT_THAT(refusal("bzImage", image),
                AllOf(HasSubstr(last_path_.string()), HasSubstr("boot sector flag")));
}

TEST_F(KernelLoader, RefusesOldBootProtocol) {
    std::vector<uint8_t> image = boot_test::make_bzimage({.version = 0x0205});
    EXPECT_THAT(refusal("bzImage", image),
                AllOf(HasSubstr(last_path_.string()), HasSubstr("2.05 is older than 2.06")));
}

TEST_F(KernelLoader, Refuses32BitOnlyBzImage) {
    std::vector<uint8_t> image = boot_test::make_bzimage({.xloadflags = 0});
    EXPECT_THAT(refusal("bzImage", image),
                AllOf(HasSubstr(last_path_.string()), HasSubstr("32-bit-only"),
                      HasSubstr("XLF_KERNEL_64")));
}

TEST_F(KernelLoader, RefusesZImage) {
    std::vector<uint8_t> image = boot_test::make_bzimage({.loadflags = 0});
    EXPECT_THAT(refusal("zImage", image),
                AllOf(HasSubstr(last_path_.string()), HasSubstr("LOADED_HIGH")));
}

TEST_F(KernelLoader, RefusesBzImageCutInsideItsSetupHeader) {
    std::vector<uint8_t> image = boot_test::make_bzimage({});
    image.resize(0x240);
    EXPECT_THAT(refusal("bzImage", image),
                AllOf(HasSubstr(last_path_.string()), HasSubstr("truncated"),
                      HasSubstr("setup header ends at 0x26c")));
}

TEST_F(KernelLoader, RefusesBzImageWhosePayloadIsCut) {
    std::vector<uint8_t> image = boot_test::make_bzimage({.payload_size = 0x4000});
    image.resize(image.size() - 0x100);
    EXPECT_THAT(refusal("bzImage", image), AllOf(HasSubstr(last_path_.string()),
                                                 HasSubstr("truncated"), HasSubstr("syssize")));
}

TEST_F(KernelLoader, RefusesBzImageTooLargeForRam) {
    std::vector<uint8_t> image = boot_test::make_bzimage({.init_size = 16 * kMiB});
    EXPECT_THAT(refusal("bzImage", image),
                AllOf(HasSubstr(last_path_.string()), HasSubstr("needs 16777216 bytes of RAM")));
}

TEST_F(KernelLoader, RefusesCommandLineLongerThanCmdlineSize) {
    std::vector<uint8_t> image = boot_test::make_bzimage({.cmdline_size = 16});
    EXPECT_EQ(refusal("bzImage", image, {}, std::string(16, 'a')), "");
    EXPECT_THAT(refusal("bzImage", image, {}, std::string(17, 'a')),
                AllOf(HasSubstr(last_path_.string()),
                      HasSubstr("command line is 17 bytes, longer than the 16 bytes")));
}

TEST_F(KernelLoader, RefusesMissingInitrd) {
    std::filesystem::path missing = dir_.path() / "no-initrd";
    EXPECT_THAT(refusal("bzImage", boot_test::make_bzimage({}), missing),
                HasSubstr("initrd " + missing.string() + ": no such file"));
}

TEST_F(KernelLoader, RefusesInitrdThatIsADirectory) {
    EXPECT_THAT(refusal("bzImage", boot_test::make_bzimage({}), dir_.path()),
                HasSubstr("initrd " + dir_.path().string() + ": is a directory, not a file"));
}

TEST_F(KernelLoader, RefusesInitrdTooLargeForRam) {
    std::vector<uint8_t> initrd(15 * kMiB);
    std::filesystem::path initrd_path = dir_.write("initrd", initrd);
    EXPECT_THAT(refusal("bzImage", boot_test::make_bzimage({}), initrd_path),
                AllOf(HasSubstr("initrd " + initrd_path.string()), HasSubstr("do not fit")));
}

TEST_F(KernelLoader, RefusesKernelFileLargerThanRam) {
    std::vector<uint8_t> image = boot_test::make_bzimage({.payload_size = 17 * kMiB});
    EXPECT_THAT(refusal("bzImage", image),
                AllOf(HasSubstr(last_path_.string()), HasSubstr("larger than guest RAM")));
}

TEST_F(KernelLoader, NamesTheFormats) {
    EXPECT_EQ(to_string(KernelFormat::kBzImage), "bzImage");
    EXPECT_EQ(to_string(KernelFormat::kPvhElf), "PVH ELF");
}

}  // namespace
}  // namespace vireo::x86
