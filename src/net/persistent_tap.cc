#include "net/persistent_tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/unique_fd.h"

namespace vireo {
namespace {

constexpr unsigned kTapFlags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;

std::string describe_owner(const InterfaceOwnership& found) {
    return found.owner ? fmt::format("owned by uid {}", *found.owner) : "owned by no one";
}

// Attaches a new descriptor to the TAP `name` with `flags`; the kernel
// refuses a multi-queue request for a single-queue TAP and the reverse.
UniqueFd attach(const std::string& name, unsigned flags, const char* purpose) {
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!fd) {
        fail_errno("tap {}: cannot open /dev/net/tun to {}", name, purpose);
    }
    ifreq request{};
    std::memcpy(request.ifr_name, name.data(), std::min(name.size(), size_t{IFNAMSIZ - 1}));
    request.ifr_flags = static_cast<short>(flags);
    if (::ioctl(fd.get(), TUNSETIFF, &request) != 0) {
        fail_errno("tap {}: cannot {} (TUNSETIFF)", name, purpose);
    }
    return fd;
}

std::string read_sysfs(const std::filesystem::path& file) {
    std::ifstream stream(file);
    if (!stream) {
        fail_errno("{}: cannot read", file.string());
    }
    std::ostringstream text;
    text << stream.rdbuf();
    return text.str();
}

}  // namespace

std::optional<uint32_t> parse_tun_id(std::string_view text, std::string_view what) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.remove_suffix(1);
    }
    if (text == "-1") {
        return std::nullopt;
    }
    uint32_t id = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
        fail("{}: '{}' is neither -1 nor a uid/gid", what, text);
    }
    return id;
}

std::optional<std::string> foreign_tap_problem(const std::string& name,
                                               const InterfaceOwnership& found, TapOwner owner) {
    if (!found.tun || (found.flags & IFF_TAP) == 0) {
        return fmt::format("tap {}: an interface of that name exists and is not a TAP", name);
    }
    if (found.owner != owner.uid || (found.flags & IFF_PERSIST) == 0) {
        return fmt::format("tap {}: a TAP of that name exists and belongs to someone else ({}{})",
                           name, describe_owner(found),
                           (found.flags & IFF_PERSIST) == 0 ? ", held open by a process" : "");
    }
    return std::nullopt;
}

std::optional<InterfaceOwnership> read_interface_ownership(const std::string& name) {
    std::filesystem::path folder = std::filesystem::path("/sys/class/net") / name;
    std::error_code error;
    if (!std::filesystem::exists(folder, error)) {
        return std::nullopt;
    }
    InterfaceOwnership found;
    if (!std::filesystem::exists(folder / "tun_flags", error)) {
        return found;
    }
    found.tun = true;
    std::string flags = read_sysfs(folder / "tun_flags");
    found.flags = static_cast<unsigned>(std::stoul(flags, nullptr, 16));
    found.owner = parse_tun_id(read_sysfs(folder / "owner"), (folder / "owner").string());
    found.group = parse_tun_id(read_sysfs(folder / "group"), (folder / "group").string());
    return found;
}

void create_persistent_tap(const std::string& name, bool multi_queue, TapOwner owner) {
    // IFF_TUN_EXCL: create, never attach to a TAP that appeared meanwhile.
    UniqueFd fd =
        attach(name, kTapFlags | IFF_TUN_EXCL | (multi_queue ? IFF_MULTI_QUEUE : 0), "create");
    if (::ioctl(fd.get(), TUNSETOWNER, static_cast<unsigned long>(owner.uid)) != 0) {
        fail_errno("tap {}: TUNSETOWNER {}", name, owner.uid);
    }
    if (::ioctl(fd.get(), TUNSETGROUP, static_cast<unsigned long>(owner.gid)) != 0) {
        fail_errno("tap {}: TUNSETGROUP {}", name, owner.gid);
    }
    UniqueFd control(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq request{};
    std::memcpy(request.ifr_name, name.data(), name.size());
    if (!control || ::ioctl(control.get(), SIOCGIFFLAGS, &request) != 0) {
        fail_errno("tap {}: SIOCGIFFLAGS", name);
    }
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
    if (::ioctl(control.get(), SIOCSIFFLAGS, &request) != 0) {
        fail_errno("tap {}: cannot bring it up (SIOCSIFFLAGS)", name);
    }
    // Last: until here, closing `fd` deletes the TAP again.
    if (::ioctl(fd.get(), TUNSETPERSIST, 1) != 0) {
        fail_errno("tap {}: TUNSETPERSIST", name);
    }
}

bool delete_persistent_tap(const std::string& name) {
    std::optional<InterfaceOwnership> found = read_interface_ownership(name);
    if (!found) {
        return false;
    }
    if (!found->tun || (found->flags & IFF_TAP) == 0) {
        fail("tap {}: cannot delete it: the interface of that name is not a TAP", name);
    }
    UniqueFd fd = attach(name, IFF_TAP | IFF_NO_PI | (found->flags & IFF_MULTI_QUEUE), "delete");
    if (::ioctl(fd.get(), TUNSETPERSIST, 0) != 0) {
        fail_errno("tap {}: TUNSETPERSIST 0", name);
    }
    return true;  // the close of `fd`, its last queue, deletes it
}

}  // namespace vireo
