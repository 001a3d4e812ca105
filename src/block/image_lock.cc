#include "block/image_lock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "base/error.h"

namespace vireo {
namespace {

// QEMU's lock bytes (block/file-posix.c) and permission bits (BLK_PERM_*).
constexpr off_t kPermBase = 100;
constexpr off_t kSharedBase = 200;
constexpr int kPermConsistentRead = 0;
constexpr int kPermWrite = 1;
constexpr int kPermResize = 3;

flock byte_lock(short type, off_t byte) {
    flock lock{};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_start = byte;
    lock.l_len = 1;
    return lock;
}

// The pid that holds a lock on `byte` of the file, found through the
// "lock:" lines of /proc/<pid>/fdinfo/<fd> (OFD locks report no pid).
std::optional<long> find_holder(int fd, off_t byte) {
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        return std::nullopt;
    }
    std::string needle =
        fmt::format("{:02x}:{:02x}:{} {} ", major(st.st_dev), minor(st.st_dev), st.st_ino, byte);
    std::string self = std::to_string(getpid());
    std::string own_fd = std::to_string(fd);
    std::error_code ec;
    for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
        std::string name = proc.path().filename();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        std::error_code fd_ec;
        for (const auto& info :
             std::filesystem::directory_iterator(proc.path() / "fdinfo", fd_ec)) {
            if (name == self && info.path().filename() == own_fd) {
                continue;  // our own locks on the byte, taken a moment ago
            }
            std::ifstream in(info.path());
            std::string line;
            while (std::getline(in, line)) {
                if (line.rfind("lock:", 0) == 0 && line.find(needle) != std::string::npos) {
                    return std::stol(name);
                }
            }
        }
    }
    return std::nullopt;
}

[[noreturn]] void fail_in_use(int fd, const std::filesystem::path& path, off_t byte,
                              pid_t reported) {
    std::optional<long> pid;
    if (reported > 0) {
        pid = reported;
    } else {
        pid = find_holder(fd, byte);
    }
    if (pid) {
        fail("disk {}: in use by another process (pid {})", path.string(), *pid);
    }
    fail("disk {}: in use by another process", path.string());
}

}  // namespace

void lock_image(int fd, const std::filesystem::path& path, bool writable) {
    // What we do with the image, and what we cannot let others do meanwhile.
    std::vector<int> held = {kPermConsistentRead};
    if (writable) {
        held.push_back(kPermWrite);
        held.push_back(kPermResize);
    }
    std::vector<int> unshared = {kPermWrite, kPermResize};

    auto set = [&](off_t byte) {
        flock lock = byte_lock(F_RDLCK, byte);
        if (fcntl(fd, F_OFD_SETLK, &lock) == 0) {
            return;
        }
        if (errno == EAGAIN || errno == EACCES) {
            fail_in_use(fd, path, byte, -1);
        }
        fail_errno("disk {}: cannot lock", path.string());
    };
    auto test = [&](off_t byte) {
        flock lock = byte_lock(F_WRLCK, byte);
        if (fcntl(fd, F_OFD_GETLK, &lock) != 0) {
            fail_errno("disk {}: cannot test lock", path.string());
        }
        if (lock.l_type != F_UNLCK) {
            fail_in_use(fd, path, byte, lock.l_pid);
        }
    };
    for (int perm : held) {
        set(kPermBase + perm);
    }
    for (int perm : unshared) {
        set(kSharedBase + perm);
    }
    // Conflicts: someone refuses to share what we hold, or holds what we refuse.
    for (int perm : held) {
        test(kSharedBase + perm);
    }
    for (int perm : unshared) {
        test(kPermBase + perm);
    }
}

}  // namespace vireo
