#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "block/image_options.h"
#include "net/mac_address.h"
#include "net/network_config.h"

namespace vireo {

// A VM's whole definition, as vireo-vmm receives it: one JSON document,
// parsed once at the boundary into this value type. Errors name the field
// ("boot.kernel: ...") and what is allowed.
struct VmConfig {
    static constexpr uint32_t kMaxVcpus = 64;
    static constexpr uint64_t kMinMemoryMib = 16;
    static constexpr uint64_t kMaxMemoryMib = 1024 * 1024;

    enum class ConsoleOutput { Stdio, File, None };

    std::string name = "vm";
    uint32_t vcpus = 1;
    uint64_t memory_mib = 256;
    struct Boot {
        std::string kernel;
        std::optional<std::string> initrd;
        std::string cmdline;
    } boot;
    struct Console {
        ConsoleOutput output = ConsoleOutput::Stdio;
        std::string path;   // for ConsoleOutput::File
        bool input = true;  // forward stdin to the UART
    } console;
    std::optional<std::string> control_socket;
    static constexpr uint32_t kMaxPollMaxUs = 1000;
    struct Devices {
        bool rng = true;
        // How long a disk's or vNIC's worker may poll for the guest's next
        // request before it sleeps, adaptively (PollWindow); 0: never.
        uint32_t poll_max_us = 64;
    } devices;
    // One virtio-blk device each, in this order.
    static constexpr size_t kMaxDisks = 16;
    static constexpr size_t kMaxDiskSerial = 20;    // what virtio-blk's GET_ID carries
    static constexpr unsigned kMaxDiskQueues = 16;  // VirtioBlock::kMaxQueues
    struct Disk {
        std::string path;  // an existing image file or block device
        bool read_only = false;
        std::string serial;  // printable ASCII; empty: none
        CacheMode cache = CacheMode::writeback;
        // Request queues; 0: one per vCPU, up to kMaxDiskQueues (QEMU's default).
        unsigned queues = 0;
        unsigned queue_count(unsigned vcpu_count) const {
            return queues != 0 ? queues : std::min(vcpu_count, kMaxDiskQueues);
        }
    };
    std::vector<Disk> disks;
    // One virtio-net device each, in this order, after the disks.
    static constexpr size_t kMaxNics = 8;
    static constexpr unsigned kMaxNicQueues = 16;  // VirtioNet::kMaxQueuePairs
    struct Nic {
        std::string tap;  // the host's TAP interface: attached to, or created
        MacAddress mac{};
        // The port group its launcher plugs `tap` into before vireo-vmm
        // starts: vireo run, which names a new TAP and hands it over as
        // `tap_fd`, an fd of vireo-vmm (inherited) used rather than opening
        // `tap`; or vireod, which creates `tap` for the jailed VMM to attach.
        std::string portgroup;
        std::optional<int> tap_fd;
        // The port group's security policy, which the vNIC enforces.
        std::optional<SecurityPolicy> security;
        // Whether the host kernel's vhost-net may move its frames (when
        // /dev/vhost-net is there).
        bool vhost = true;
        // Queue pairs (multiqueue): the TAP gets as many queues, and the
        // driver spreads its flows over them, one pair per vCPU at most.
        unsigned queues = 1;
        // The team (bond) of the port group's switch when it notifies
        // switches: after each failover of it the vNIC announces its MAC.
        std::string team;
    };
    std::vector<Nic> nics;
    // vireod's port channel (net/port_channel.h), an fd vireo-vmm inherits:
    // through it the vNICs on port groups have their ports follow each MAC
    // the guest takes, since a jailed VMM cannot change those tables itself.
    std::optional<int> port_channel_fd;

    // Throws vireo::Error naming `source` (a file name) and the field.
    static VmConfig from_json(const nlohmann::json& document, const std::string& source);
    static VmConfig from_json_text(const std::string& text, const std::string& source);
    // A definition file. Relative paths in it (kernel, initrd, disks, console
    // log, control socket) are relative to the file's folder, so a VM folder
    // on a datastore can be copied or opened from another host as it is.
    static VmConfig from_file(const std::string& path);
    // `document` with its relative paths made absolute under `folder`, as
    // from_file() reads a definition in that folder, and every path without
    // '.' or '..' (a jailed VMM sees the files, not the folders on the way).
    static nlohmann::json in_folder(nlohmann::json document, const std::filesystem::path& folder);
    nlohmann::json to_json() const;
};

}  // namespace vireo
