#include "block_test_support.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>

namespace vireo::testing {

namespace {

bool takes_direct_io(const std::filesystem::path& folder) {
    std::string probe = (folder / "vireo-direct-io-probe-XXXXXX").string();
    int fd = mkstemp(probe.data());
    if (fd < 0) {
        return false;
    }
    ::close(fd);
    fd = ::open(probe.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
    ::unlink(probe.c_str());
    if (fd < 0) {
        return false;
    }
    ::close(fd);
    return true;
}

// Where scratch folders go: the system's temporary folder when its file
// system takes O_DIRECT (cache mode none needs it; tmpfs before Linux 6.6
// refuses it), else the current folder (ctest's, in the build tree on disk).
std::filesystem::path scratch_parent() {
    static const std::filesystem::path parent = [] {
        std::filesystem::path temporary = std::filesystem::temp_directory_path();
        return takes_direct_io(temporary) ? temporary : std::filesystem::current_path();
    }();
    return parent;
}

}  // namespace

ScratchDir::ScratchDir() {
    std::string pattern_text = (scratch_parent() / "vireo-block-XXXXXX").string();
    std::vector<char> buffer(pattern_text.begin(), pattern_text.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    path_ = buffer.data();
}

ScratchDir::~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

CommandResult run_command(const std::string& command) {
    CommandResult result;
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) {
        return result;
    }
    std::array<char, 4096> buffer{};
    size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
        result.output.append(buffer.data(), n);
    }
    int status = pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

bool have_qemu_img() {
    static const bool present = run_command("qemu-img --version").status == 0;
    return present;
}

std::string qemu_img(const std::string& args) {
    CommandResult result = run_command("qemu-img " + args);
    EXPECT_EQ(result.status, 0) << "qemu-img " << args << "\n" << result.output;
    return result.output;
}

std::string quoted(const std::filesystem::path& path) {
    return "'" + path.string() + "'";
}

std::vector<uint8_t> pattern(uint64_t seed, uint64_t offset, size_t length) {
    std::vector<uint8_t> out(length);
    for (size_t i = 0; i < length; ++i) {
        uint64_t at = offset + i;
        uint64_t word = (seed * 0x9e3779b97f4a7c15ULL) ^ (at / 8);
        out[i] = static_cast<uint8_t>(word >> ((at % 8) * 8));
    }
    return out;
}

}  // namespace vireo::testing
