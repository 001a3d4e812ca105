#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <vector>

// Files the loader tests feed to the loaders: a private temporary directory,
// and the Debian kernel the setup script extracts.
namespace vireo::x86::boot_test {

constexpr uint64_t kMiB = 1 << 20;

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "vireo-arch-XXXXXX");
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::filesystem::path& path() const { return path_; }

    std::filesystem::path write(const std::string& name, std::span<const uint8_t> bytes) const {
        std::filesystem::path file = path_ / name;
        std::ofstream out(file, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()),
                  static_cast<std::streamsize>(bytes.size()));
        if (!out) {
            throw std::runtime_error("cannot write " + file.string());
        }
        return file;
    }

private:
    std::filesystem::path path_;
};

inline std::vector<uint8_t> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// $VIREO_TEST_VMLINUZ, else the first /var/cache/vireo/linux/boot/vmlinuz-*.
inline std::optional<std::filesystem::path> debian_vmlinuz() {
    if (const char* env = std::getenv("VIREO_TEST_VMLINUZ"); env != nullptr && *env != '\0') {
        return std::filesystem::path(env);
    }
    std::error_code error;
    std::filesystem::directory_iterator it("/var/cache/vireo/linux/boot", error);
    if (error) {
        return std::nullopt;
    }
    for (const auto& entry : it) {
        if (entry.path().filename().string().starts_with("vmlinuz-")) {
            return entry.path();
        }
    }
    return std::nullopt;
}

inline constexpr char kNoVmlinuzMessage[] =
    "no Debian kernel: set VIREO_TEST_VMLINUZ or extract one with "
    "`apt-get download linux-image-<version>-amd64 && dpkg-deb -x linux-image-*.deb "
    "/var/cache/vireo/linux` (the version: `apt-cache depends linux-image-amd64`)";

}  // namespace vireo::x86::boot_test
