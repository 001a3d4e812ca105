#include "arch/x86/kernel_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "arch/x86/boot_loaders.h"
#include "arch/x86/boot_params.h"
#include "arch/x86/layout.h"
#include "base/error.h"
#include "base/unique_fd.h"

namespace vireo::x86 {

namespace {

constexpr uint64_t kPageSize = 0x1000;
constexpr uint8_t kElfMagic[] = {0x7f, 'E', 'L', 'F'};

struct OpenFile {
    UniqueFd fd;
    uint64_t size;
};

OpenFile open_regular_file(const std::filesystem::path& path, std::string_view what) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT) {
            fail("{} {}: no such file", what, path.string());
        }
        fail_errno("{} {}: cannot open", what, path.string());
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        fail_errno("{} {}: cannot stat", what, path.string());
    }
    if (S_ISDIR(st.st_mode)) {
        fail("{} {}: is a directory, not a file", what, path.string());
    }
    if (!S_ISREG(st.st_mode)) {
        fail("{} {}: not a regular file", what, path.string());
    }
    return {std::move(fd), static_cast<uint64_t>(st.st_size)};
}

// What the first bytes say; empty when neither format's signature is there.
std::optional<KernelFormat> format_of(std::span<const uint8_t> head) {
    if (head.size() >= sizeof(kElfMagic) &&
        std::memcmp(head.data(), kElfMagic, sizeof(kElfMagic)) == 0) {
        return KernelFormat::kPvhElf;
    }
    constexpr uint64_t magic_offset = kSetupHeaderOffset + offsetof(SetupHeader, header);
    uint32_t magic = 0;
    if (head.size() >= magic_offset + sizeof(magic)) {
        std::memcpy(&magic, head.data() + magic_offset, sizeof(magic));
    }
    if (magic == kSetupMagic) {
        return KernelFormat::kBzImage;
    }
    return std::nullopt;
}

[[noreturn]] void fail_not_a_kernel(const std::string& name, uint64_t size) {
    constexpr uint64_t magic_end = kSetupHeaderOffset + offsetof(SetupHeader, header) + 4;
    fail("kernel {}: not a Linux bzImage or a PVH ELF (no 'HdrS' magic and no ELF header{})", name,
         size < magic_end ? fmt::format("; only {} bytes", size) : std::string());
}

// Reads exactly out.size() bytes from the start of the file.
void read_whole(const OpenFile& file, std::span<uint8_t> out, std::string_view what,
                const std::filesystem::path& path) {
    uint64_t done = 0;
    while (done < out.size()) {
        ssize_t n =
            ::pread(file.fd.get(), out.data() + done, out.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            fail_errno("{} {}: read failed", what, path.string());
        }
        if (n == 0) {
            fail("{} {}: file shrank to {} bytes while being read", what, path.string(), done);
        }
        done += static_cast<uint64_t>(n);
    }
}

}  // namespace

std::string_view to_string(KernelFormat format) {
    switch (format) {
        case KernelFormat::kBzImage:
            return "bzImage";
        case KernelFormat::kPvhElf:
            return "PVH ELF";
    }
    return "unknown";
}

uint64_t low_ram_end(const GuestMemory& memory) {
    return std::min(memory.total_size(), kLowRamEnd);
}

LoadedRange write_cmdline(const GuestMemory& memory, const std::filesystem::path& kernel,
                          std::string_view cmdline, uint64_t max_length) {
    max_length = std::min(max_length, kCmdlineMaxSize - 1);
    if (cmdline.size() > max_length) {
        fail("kernel {}: command line is {} bytes, longer than the {} bytes the kernel accepts",
             kernel.string(), cmdline.size(), max_length);
    }
    std::vector<uint8_t> bytes(cmdline.begin(), cmdline.end());
    bytes.push_back(0);
    if (!memory.write(kCmdlineAddress, bytes.data(), bytes.size())) {
        fail("guest RAM does not hold the command line at {:#x}", kCmdlineAddress);
    }
    return {kCmdlineAddress, bytes.size()};
}

LoadedRange load_initrd(const GuestMemory& memory, const std::filesystem::path& initrd,
                        uint64_t lowest, uint64_t end, std::string_view limit_name) {
    OpenFile file = open_regular_file(initrd, "initrd");
    uint64_t lowest_aligned = (lowest + kPageSize - 1) & ~(kPageSize - 1);
    if (file.size > end || ((end - file.size) & ~(kPageSize - 1)) < lowest_aligned) {
        fail(
            "initrd {}: {} bytes do not fit in guest RAM between the kernel's end ({:#x}) and "
            "{} ({:#x})",
            initrd.string(), file.size, lowest_aligned, limit_name, end);
    }
    uint64_t address = (end - file.size) & ~(kPageSize - 1);
    if (file.size == 0) {
        return {address, 0};
    }
    std::optional<std::span<uint8_t>> target = memory.span(address, file.size);
    if (!target) {
        fail("initrd {}: [{:#x}, {:#x}) is not guest RAM", initrd.string(), address,
             address + file.size);
    }
    read_whole(file, *target, "initrd", initrd);
    return {address, file.size};
}

BootInfo load_kernel(const GuestMemory& memory, const BootRequest& request,
                     std::span<const uint8_t> kernel_bytes, uint64_t rsdp_address) {
    const std::string name = request.kernel.string();
    if (kernel_bytes.empty()) {
        fail("kernel {}: file is empty", name);
    }
    std::optional<KernelFormat> format = format_of(kernel_bytes);
    if (!format) {
        fail_not_a_kernel(name, kernel_bytes.size());
    }
    if (*format == KernelFormat::kPvhElf) {
        return load_pvh_elf(memory, request, kernel_bytes, rsdp_address);
    }
    return load_bzimage(memory, request, kernel_bytes, rsdp_address);
}

KernelFormat identify_kernel(const std::filesystem::path& path) {
    OpenFile file = open_regular_file(path, "kernel");
    if (file.size == 0) {
        fail("kernel {}: file is empty", path.string());
    }
    std::vector<uint8_t> head(std::min<uint64_t>(file.size, kPageSize));
    read_whole(file, head, "kernel", path);
    std::optional<KernelFormat> format = format_of(head);
    if (!format) {
        fail_not_a_kernel(path.string(), file.size);
    }
    return *format;
}

void require_readable_file(const std::filesystem::path& path, std::string_view what) {
    open_regular_file(path, what);
}

BootInfo load_kernel(const GuestMemory& memory, const BootRequest& request, uint64_t rsdp_address) {
    OpenFile file = open_regular_file(request.kernel, "kernel");
    if (file.size > memory.total_size()) {
        fail("kernel {}: {} bytes, larger than guest RAM ({} bytes)", request.kernel.string(),
             file.size, memory.total_size());
    }
    std::vector<uint8_t> bytes(file.size);
    read_whole(file, bytes, "kernel", request.kernel);
    return load_kernel(memory, request, bytes, rsdp_address);
}

}  // namespace vireo::x86
