#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string_view>

#include "base/unique_fd.h"

namespace vireo {

// The cgroup (v2) of each VMM: `<root>/vireo-vms/<vm>`, where root is
// vireod's own cgroup (under systemd, the unit's, delegated to it:
// Delegate=yes) or the one `--cgroup-root` names. vireod creates it before
// the VMM starts, the child moves itself into it before exec, and vireod
// removes it once the VMM and any process it left (its teardown child) are
// gone. vireod mounts nothing: when /sys/fs/cgroup is not cgroup2 (a v1 or
// hybrid host), VMMs stay in vireod's cgroup and a warning says so.
class VmmCgroups {
public:
    // `root`: nullopt for vireod's own cgroup. Throws vireo::Error when an
    // explicit root is not a folder of a cgroup2 file system.
    explicit VmmCgroups(std::optional<std::filesystem::path> root);

    bool enabled() const { return !root_.empty(); }
    // `<root>/vireo-vms/<vm>`, created (a stale one from a crash is reused);
    // nullopt when cgroups are not enabled. Throws vireo::Error naming it.
    std::optional<std::filesystem::path> create(std::string_view vm) const;
    // The cgroup's cgroup.procs open for writing: the child writes "0" to it
    // to move itself in (no allocation after fork).
    static UniqueFd open_procs(const std::filesystem::path& cgroup);
    // Removes the cgroup once it is empty, killing what is left in it after a
    // grace period (cgroup.kill); logs a warning when it cannot.
    static void remove(const std::filesystem::path& cgroup);
    // The cgroup `pid` is in (under /sys/fs/cgroup) when it is a VM's cgroup
    // of this kind (`.../vireo-vms/<vm>`): for a VMM that vireod adopts.
    static std::optional<std::filesystem::path> of_vmm(pid_t pid, std::string_view vm);

    // The cgroup v2 path in the text of /proc/PID/cgroup (the "0::" line);
    // nullopt when there is none.
    static std::optional<std::string> unified_path(std::string_view proc_cgroup_text);

private:
    std::filesystem::path root_;  // empty: not enabled
};

}  // namespace vireo
