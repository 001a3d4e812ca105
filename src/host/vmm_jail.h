#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "host/vmm_identity.h"
#include "vmm/vm_config.h"

namespace vireo {

// What a VMM's mount namespace shows of the host: each path at the same place
// as on the host, so vm.json needs no rewriting.
struct JailBind {
    std::string path;
    bool directory = false;
    bool writable = false;
};

// The host paths a jail shows besides what the VM definition names.
struct JailHostPaths {
    std::filesystem::path vm_folder;   // writable (console log, disks)
    std::filesystem::path run_folder;  // the VMM's control socket and report
    std::filesystem::path vmm_binary;
    // Read-only folders of the VMM's shared libraries and their loader
    // ("/usr", and /lib* where they are folders rather than links into /usr).
    std::vector<std::filesystem::path> library_folders;
    // The backing files of the VM's disks (qcow2 chains), read-only.
    std::vector<std::filesystem::path> backing_files;
};

// The bind mounts a VMM's jail needs for `config` (paths absolute, as
// VmConfig::from_file gives them), sorted by path: its folders, binary and
// libraries, boot files, disks and backing files, a console log outside its
// folder. A path inside a folder already shown is left out unless it needs
// more (writable inside a read-only folder).
std::vector<JailBind> jail_binds(const VmConfig& config, const JailHostPaths& host);
// The device nodes the VMM opens: /dev/kvm, /dev/null, /dev/urandom, and
// /dev/net/tun and /dev/vhost-net when it has vNICs.
std::vector<std::string> jail_devices(const VmConfig& config);

// A VMM's mount namespace, planned in vireod (allocating) and entered by the
// forked child before exec (system calls only: the child of a threaded
// process may not allocate). Modelled on Firecracker's jailer: a fresh
// tmpfs root holding exactly the binds above, device nodes of its own owned
// by the VM's uid (so the VMM needs no group of the host's), /proc with only
// its own processes (hidepid=invisible; /proc/self/fd reopens disks for
// cache "none"), then pivot_root, the old root unmounted, the new root
// read-only. Propagation is private: nothing mounted here reaches the host.
class VmmJail {
public:
    // Plans the jail on the empty folder `mount_point` (where the child
    // mounts its tmpfs; any folder: it is a mount point in the child's
    // namespace only). Stats the devices and reads the host's /lib* links.
    VmmJail(const std::vector<JailBind>& binds, const std::vector<std::string>& devices,
            const std::filesystem::path& mount_point, VmmIdentity identity);

    // In the forked child: builds the namespace and pivots into it. Returns
    // -1, or the index of the step that failed, errno telling why.
    int enter() const noexcept;
    // The step `index` in words, for the error message.
    std::string describe(int index) const;

private:
    enum class Action {
        unshare_mounts,
        make_private,
        mount_root,
        make_folder,
        make_file,
        bind,
        remount_read_only,
        make_device,
        make_link,
        mount_proc,
        pivot,
        seal_root,
    };
    struct Step {
        Action action;
        std::string target;  // inside the new root, as the child sees it before pivot
        std::string source;  // bind: host path; make_link: the link's text
        dev_t device = 0;
        mode_t mode = 0;
    };
    void add(Action action, std::string target, std::string source = {}, dev_t device = 0,
             mode_t mode = 0);
    void add_parents(const std::filesystem::path& path);

    std::filesystem::path root_;
    VmmIdentity identity_;
    std::vector<Step> steps_;
    std::vector<std::string> made_;  // folders already planned
};

// The host folders holding the VMM's libraries and loader: /usr and the
// /lib* entries that are folders; /lib* links into /usr are recreated as links
// in the jail. Binding /usr whole (read-only) rather than the libraries
// ldd would name keeps the jail right across library upgrades and dlopen
// (glibc's NSS, libgcc_s), and shows nothing a VMM could write.
std::vector<std::filesystem::path> library_folders();

// Prepares the files the VMM writes for `identity` (vireod, as root, before
// start): the VMM's run folder (created, its own, 0700), its console log and
// the writable disks inside the VM folder (created/chowned). The folder itself
// and vm.json stay root's: a VMM cannot change its own definition. Disks and
// a console log outside the folder are left as they are; they must already
// be writable for the VM's uid (the VMM's error names the file otherwise).
void hand_over_files(const VmConfig& config, const std::filesystem::path& vm_folder,
                     const std::filesystem::path& run_folder, VmmIdentity identity);

}  // namespace vireo
