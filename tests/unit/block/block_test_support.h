#pragma once

// What the block tests share: a scratch folder, running qemu-img (the oracle),
// and deterministic test patterns.

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "block/image_options.h"

namespace vireo::testing {

inline CreateOptions qcow2_options(uint64_t size, uint32_t cluster_size = 65536,
                                   std::string backing = {},
                                   std::optional<ImageFormat> backing_format = {}) {
    CreateOptions options;
    options.size = size;
    options.cluster_size = cluster_size;
    options.backing_file = std::move(backing);
    options.backing_format = backing_format;
    return options;
}
inline OpenOptions read_only() {
    OpenOptions options;
    options.read_only = true;
    return options;
}

// A fresh folder under the temp dir, removed afterwards.
class ScratchDir {
public:
    ScratchDir();
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

struct CommandResult {
    int status = -1;     // exit status, or -1 if it did not exit normally
    std::string output;  // stdout and stderr
};
CommandResult run_command(const std::string& command);

bool have_qemu_img();
// Runs `qemu-img <args>`; fails the test if it exits non-zero.
std::string qemu_img(const std::string& args);
// Shell-quotes a path.
std::string quoted(const std::filesystem::path& path);

// `length` bytes that depend on `seed` and the offset: each 8 bytes hold
// seed ^ offset, so a misplaced cluster shows.
std::vector<uint8_t> pattern(uint64_t seed, uint64_t offset, size_t length);

#define SKIP_WITHOUT_QEMU_IMG()                                 \
    do {                                                        \
        if (!::vireo::testing::have_qemu_img()) {               \
            GTEST_SKIP() << "qemu-img (qemu-utils) is missing"; \
        }                                                       \
    } while (0)

}  // namespace vireo::testing
