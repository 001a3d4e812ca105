#include "net/vhost_net.h"

#include <fcntl.h>
// linux/virtio_ring.h's legacy helpers are C, not C++; vhost needs none of them.
#define VIRTIO_RING_NO_LEGACY
#include <linux/vhost.h>
#include <sys/ioctl.h>

#include <vector>

#include "base/error.h"

namespace vireo {

std::unique_ptr<VhostNet> VhostNet::open() {
    UniqueFd fd(::open("/dev/vhost-net", O_RDWR | O_CLOEXEC));
    if (!fd) {
        fail_errno("/dev/vhost-net");
    }
    if (::ioctl(fd.get(), VHOST_SET_OWNER) != 0) {
        fail_errno("/dev/vhost-net: VHOST_SET_OWNER");
    }
    std::unique_ptr<VhostNet> vhost(new VhostNet(std::move(fd)));
    if (::ioctl(vhost->fd_.get(), VHOST_GET_FEATURES, &vhost->features_) != 0) {
        fail_errno("/dev/vhost-net: VHOST_GET_FEATURES");
    }
    return vhost;
}

VhostNet::VhostNet(UniqueFd fd) : fd_(std::move(fd)) {}

void VhostNet::configure(uint64_t features, std::span<const MemoryRegion> memory) {
    if (::ioctl(fd_.get(), VHOST_SET_FEATURES, &features) != 0) {
        fail_errno("vhost-net: VHOST_SET_FEATURES {:#x}", features);
    }
    // struct vhost_memory ends in a flexible array of regions.
    std::vector<uint64_t> table(
        (sizeof(vhost_memory) + memory.size() * sizeof(vhost_memory_region) + 7) / 8);
    auto* header = reinterpret_cast<vhost_memory*>(table.data());
    header->nregions = static_cast<uint32_t>(memory.size());
    for (size_t i = 0; i < memory.size(); ++i) {
        header->regions[i] = {memory[i].guest_address, memory[i].size,
                              reinterpret_cast<uint64_t>(memory[i].host), 0};
    }
    if (::ioctl(fd_.get(), VHOST_SET_MEM_TABLE, header) != 0) {
        fail_errno("vhost-net: VHOST_SET_MEM_TABLE ({} regions)", memory.size());
    }
}

void VhostNet::start(uint32_t queue, const Ring& ring, int tap_fd) {
    vhost_vring_state size{queue, ring.size};
    if (::ioctl(fd_.get(), VHOST_SET_VRING_NUM, &size) != 0) {
        fail_errno("vhost-net: queue {}: VHOST_SET_VRING_NUM {}", queue, ring.size);
    }
    vhost_vring_state base{queue, 0};
    if (::ioctl(fd_.get(), VHOST_SET_VRING_BASE, &base) != 0) {
        fail_errno("vhost-net: queue {}: VHOST_SET_VRING_BASE", queue);
    }
    vhost_vring_addr addresses{};
    addresses.index = queue;
    addresses.desc_user_addr = reinterpret_cast<uint64_t>(ring.descriptors);
    addresses.avail_user_addr = reinterpret_cast<uint64_t>(ring.available);
    addresses.used_user_addr = reinterpret_cast<uint64_t>(ring.used);
    if (::ioctl(fd_.get(), VHOST_SET_VRING_ADDR, &addresses) != 0) {
        fail_errno("vhost-net: queue {}: VHOST_SET_VRING_ADDR", queue);
    }
    vhost_vring_file kick{queue, ring.kick_fd};
    if (::ioctl(fd_.get(), VHOST_SET_VRING_KICK, &kick) != 0) {
        fail_errno("vhost-net: queue {}: VHOST_SET_VRING_KICK", queue);
    }
    set_call(queue, ring.call_fd);
    set_backend(queue, tap_fd, "start");
}

void VhostNet::set_call(uint32_t queue, int call_fd) {
    vhost_vring_file call{queue, call_fd};
    if (::ioctl(fd_.get(), VHOST_SET_VRING_CALL, &call) != 0) {
        fail_errno("vhost-net: queue {}: VHOST_SET_VRING_CALL", queue);
    }
}

void VhostNet::stop_backend(uint32_t queue) {
    set_backend(queue, -1, "stop");
}

void VhostNet::start_backend(uint32_t queue, int tap_fd) {
    set_backend(queue, tap_fd, "start");
}

void VhostNet::set_backend(uint32_t queue, int tap_fd, const char* what) {
    vhost_vring_file backend{queue, tap_fd};
    if (::ioctl(fd_.get(), VHOST_NET_SET_BACKEND, &backend) != 0) {
        fail_errno("vhost-net: queue {}: {} (VHOST_NET_SET_BACKEND)", queue, what);
    }
}

}  // namespace vireo
