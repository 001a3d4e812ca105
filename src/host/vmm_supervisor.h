#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/event_fd.h"
#include "base/unique_fd.h"
#include "host/network_registry.h"
#include "host/vm_inventory.h"
#include "host/vm_ports.h"
#include "host/vmm_cgroup.h"
#include "host/vmm_identity.h"

namespace vireo {

// Runs each powered-on VM as a vireo-vmm process and watches it: jailed (a uid
// of its own, a mount namespace showing only what its definition names
// (vmm_jail.h), a cgroup of its own (vmm_cgroup.h)), confined to the system
// calls it needs (vireo-vmm --seccomp) with no_new_privs, started in a session
// of its own (so that vireod may die or restart without taking the VMs along),
// with its console in the VM folder's console.log, its own log in vmm.log, its
// pid file under `run_dir`/vms/ and its control socket and report in its own
// `run_dir`/vms/<name>/, and its vNICs' TAPs made for it (vm_ports.h). The VMM
// holds an exclusive lock on its folder's `.vireo-lock` from before exec to
// its exit, so a VM never runs twice, whoever tries. A new vireod adopts the
// VMMs its predecessor started (reattach). Refusals throw ApiError.
class VmmSupervisor {
public:
    // Called, on the watcher thread, when a VM's VMM ends: its name and how
    // it ended (the VMM's report, or what is known without it).
    using ExitHandler = std::function<void(const std::string& vm, const nlohmann::json& how)>;

    // How VMMs are jailed: their uids (VmmIdentities in `state_dir`, from
    // `uid_base` on) and their cgroups' root (nullopt: vireod's own cgroup).
    struct JailSettings {
        std::filesystem::path state_dir;
        uid_t uid_base = kDefaultVmmUidBase;
        std::optional<std::filesystem::path> cgroup_root;
    };

    VmmSupervisor(std::filesystem::path run_dir, std::string vmm_binary, const JailSettings& jail,
                  ExitHandler on_exit);
    ~VmmSupervisor();  // stops watching; the VMMs keep running
    VmmSupervisor(const VmmSupervisor&) = delete;
    VmmSupervisor& operator=(const VmmSupervisor&) = delete;

    // Adopts the VMMs of `vms` that are still running (their pid file names a
    // live vireo-vmm with this VM's control socket); forgets stale files.
    void reattach(const std::vector<VmEntry>& vms);

    // Powers the VM on; returns once its VMM answers on the control socket.
    // 409: already running (here, or its folder is locked by another VMM);
    // 500 with the VMM's own words when it ends at once. `started` runs once
    // the VM is up and before its end can be reported (a guest may power off
    // at once), so that the host's events keep their order.
    void start(const VmEntry& vm, const std::function<void()>& started);
    // Hard power-off: the VMM stops the VM; killed if it has not ended in 10 s.
    void stop(std::string_view vm);
    // ACPI power button; the guest decides.
    void shutdown(std::string_view vm);
    void pause(std::string_view vm);
    void resume(std::string_view vm);

    // Running, or being started (its VMM not answering yet).
    bool running(std::string_view vm);
    // The VMM's `info` (state, vCPUs, memory, devices), with its pid; nullopt
    // when the VM is off.
    std::optional<nlohmann::json> info(std::string_view vm);
    // Has the running VM's VMM take a crash-consistent snapshot of its
    // writable disks (vmm/machine.h); returns the VMM's answer: name,
    // created, disks, paused_ms. 409 with the VMM's words when it refuses.
    nlohmann::json snapshot(std::string_view vm, const std::string& name);
    // Hands typed bytes (in hex) to the VM's serial port; returns how many its
    // receive FIFO took. 409 when the VM is off.
    size_t console_input(std::string_view vm, const std::string& hex);

private:
    struct Vmm {
        pid_t pid = 0;
        UniqueFd pidfd;
        bool child = false;  // ours to reap; an adopted one is init's
        std::filesystem::path socket;
        std::optional<std::filesystem::path> cgroup;
        VmPorts ports;
        // vireod's end of the VMM's port channel (net/port_channel.h); none
        // without port-group vNICs, or for an adopted VMM.
        UniqueFd channel;
    };
    // The VMM's own folder: its control socket and report, bound in its jail.
    std::filesystem::path run_folder_of(std::string_view vm) const;
    std::filesystem::path socket_of(std::string_view vm) const;
    std::filesystem::path pid_file_of(std::string_view vm) const;
    std::filesystem::path report_of(std::string_view vm) const;
    // The running VMM's socket; 409 when the VM is off.
    std::filesystem::path socket_for_request(std::string_view vm);
    nlohmann::json request(std::string_view vm, const std::string& command,
                           const nlohmann::json& arguments = nlohmann::json::object(),
                           std::chrono::milliseconds timeout = std::chrono::seconds(5));
    void watch(const std::string& vm, Vmm vmm);
    void run_watcher();
    // Answers what the VMM of `vm` asks on its port channel.
    void serve_port_channel(const std::string& vm);
    void ended(const std::string& vm);
    // Removes what a VMM that has ended leaves behind (its cgroup, its TAPs).
    static void release(Vmm& vmm);

    std::filesystem::path run_dir_;
    std::string vmm_binary_;
    std::filesystem::path jail_mount_point_;
    VmmIdentities identities_;
    VmmCgroups cgroups_;
    NetworkRegistry network_;
    ExitHandler on_exit_;
    std::mutex mutex_;
    std::map<std::string, Vmm, std::less<>> vmms_;
    std::set<std::string, std::less<>> starting_;  // forked, not answering yet
    UniqueFd epoll_;
    EventFd stop_event_;
    std::thread watcher_;
};

}  // namespace vireo
