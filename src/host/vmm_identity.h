#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "host/state_file.h"

namespace vireo {

// The unprivileged user and group a VM's VMM runs as: one per VM, never
// shared with another VM, the same at every start (the files the VMM writes,
// its disks and console log, stay its own), and never given to a new VM
// after its VM is deleted (what that VM left behind stays out of reach).
struct VmmIdentity {
    uid_t uid = 0;
    gid_t gid = 0;  // a group of its own, the same number
};

// The default first id: above the ranges Debian (up to 64999), systemd's
// DynamicUser (61184-65519) and /etc/subuid (100000 + 65536 per user) give
// out, and below 2^31, which some tools take as negative.
constexpr uid_t kDefaultVmmUidBase = 2'000'000'000;
// How many VMs a host may ever have had: base + slot stays below 2^31.
constexpr uint32_t kMaxVmmSlots = 100'000'000;

// Slot `slot`'s identity; throws vireo::Error when the slot is beyond
// kMaxVmmSlots or the uid would pass 2^31 - 1.
VmmIdentity vmm_identity(uid_t base, uint32_t slot);

// Which slot each VM has, and the next free one. Slots are handed out in
// order and never reused, so a slot names one VM for the host's life.
struct VmmSlots {
    std::map<std::string, uint32_t, std::less<>> slots;
    uint32_t next = 0;

    // `vm`'s slot, allocating the next one the first time it is asked.
    uint32_t slot_of(std::string_view vm);
};

// VmmSlots kept in `<state dir>/vmm-identities.json` (a StateFile: locked,
// rewritten atomically), so the ids survive restarts of vireod.
class VmmIdentities {
public:
    VmmIdentities(std::filesystem::path state_dir, uid_t base);

    // `vm`'s identity, allocated and stored on first use.
    VmmIdentity of(std::string_view vm);
    // `vm`'s identity if it ever had one (it has run), without allocating.
    std::optional<VmmIdentity> find(std::string_view vm);

private:
    VmmSlots load() const;

    StateFile file_;
    uid_t base_;
};

}  // namespace vireo
