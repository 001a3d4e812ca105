#include "net/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "net/interface_name.h"

namespace vireo {

Tap::Tap(const std::string& name, bool multi_queue) : name_(name) {
    if (auto problem = interface_name_problem(name)) {
        fail("tap {}", *problem);
    }
    fd_.reset(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd_) {
        fail_errno("tap {}: cannot open /dev/net/tun", name);
    }
    ifreq request{};
    std::memcpy(request.ifr_name, name.data(), name.size());
    request.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR |
                                           (multi_queue ? IFF_MULTI_QUEUE : 0));
    if (::ioctl(fd_.get(), TUNSETIFF, &request) != 0) {
        fail_errno(
            "tap {}: cannot create or attach (TUNSETIFF; needs CAP_NET_ADMIN to create, "
            "and an existing one must be a {}TAP with a virtio-net header)",
            name, multi_queue ? "multi-queue " : "single-queue ");
    }
    int header_bytes = kHeaderBytes;
    if (::ioctl(fd_.get(), TUNSETVNETHDRSZ, &header_bytes) != 0) {
        fail_errno("tap {}: TUNSETVNETHDRSZ {}", name, header_bytes);
    }
    set_offloads(0);
}

Tap::Tap(UniqueFd fd, const std::string& name) : name_(name), fd_(std::move(fd)) {
    ifreq request{};
    if (::ioctl(fd_.get(), TUNGETIFF, &request) != 0) {
        fail_errno("tap {}: the fd handed over ({}) is not an open TAP (TUNGETIFF)", name,
                   fd_.get());
    }
    request.ifr_name[IFNAMSIZ - 1] = '\0';
    if (name != request.ifr_name || (request.ifr_flags & IFF_TAP) == 0 ||
        (request.ifr_flags & IFF_VNET_HDR) == 0) {
        fail(
            "tap {}: the fd handed over is {} (flags {:#x}), not this TAP with a virtio-net "
            "header",
            name, request.ifr_name, static_cast<unsigned>(request.ifr_flags));
    }
    int flags = ::fcntl(fd_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) != 0 ||
        ::fcntl(fd_.get(), F_SETFD, FD_CLOEXEC) != 0) {
        fail_errno("tap {}: fcntl", name);
    }
}

void Tap::set_offloads(unsigned tun_flags) {
    if (::ioctl(fd_.get(), TUNSETOFFLOAD, tun_flags) != 0) {
        fail_errno("tap {}: TUNSETOFFLOAD {:#x}", name_, tun_flags);
    }
}

size_t Tap::read(std::span<uint8_t> frame) {
    while (true) {
        ssize_t n = ::read(fd_.get(), frame.data(), frame.size());
        if (n >= 0) {
            return static_cast<size_t>(n);
        }
        if (errno == EAGAIN) {
            return 0;
        }
        if (errno != EINTR) {
            fail_errno("tap {}: read", name_);
        }
    }
}

void Tap::set_enabled(bool enabled) {
    ifreq request{};
    request.ifr_flags = enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
    if (::ioctl(fd_.get(), TUNSETQUEUE, &request) != 0 && errno != EINVAL) {
        // EINVAL: already so (or a single-queue TAP, whose one queue stays).
        fail_errno("tap {}: TUNSETQUEUE {}", name_, enabled ? "attach" : "detach");
    }
}

bool Tap::write(std::span<const iovec> frame) {
    while (true) {
        ssize_t n = ::writev(fd_.get(), frame.data(), static_cast<int>(frame.size()));
        if (n >= 0) {
            return true;
        }
        if (errno != EINTR) {
            return false;  // EINVAL (bad header), EAGAIN, EIO (interface down)
        }
    }
}

}  // namespace vireo
