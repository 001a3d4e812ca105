#include "host/vmm_jail.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "base/error.h"
#include "base/unique_fd.h"

namespace vireo {
namespace {

// The loader's and libraries' homes: folders, or (merged /usr) links into /usr.
constexpr const char* kLibraryRoots[] = {"/lib", "/lib64", "/lib32", "/libx32"};

bool inside(const std::filesystem::path& path, const std::filesystem::path& folder) {
    auto [end, unused] = std::mismatch(folder.begin(), folder.end(), path.begin(), path.end());
    return end == folder.end() && path != folder;
}

// `path` canonical (symbolic links resolved), or as given when it does not exist.
std::filesystem::path resolved(const std::filesystem::path& path) {
    std::error_code error;
    std::filesystem::path real = std::filesystem::weakly_canonical(path, error);
    return error ? path : real;
}

void give(const std::filesystem::path& path, VmmIdentity identity) {
    if (::chown(path.c_str(), identity.uid, identity.gid) != 0) {
        fail_errno("{}: cannot hand over to the VMM's uid {}", path.string(), identity.uid);
    }
}

}  // namespace

std::vector<JailBind> jail_binds(const VmConfig& config, const JailHostPaths& host) {
    std::map<std::string, JailBind> wanted;
    auto want = [&](const std::filesystem::path& path, bool directory, bool writable) {
        std::string key = path.lexically_normal().string();
        JailBind& bind = wanted[key];
        bind.path = key;
        bind.directory = bind.directory || directory;
        bind.writable = bind.writable || writable;
    };
    want(host.vm_folder, true, true);
    want(host.run_folder, true, true);
    want(host.vmm_binary, false, false);
    for (const std::filesystem::path& folder : host.library_folders) {
        want(folder, true, false);
    }
    want(config.boot.kernel, false, false);
    if (config.boot.initrd) {
        want(*config.boot.initrd, false, false);
    }
    for (const VmConfig::Disk& disk : config.disks) {
        want(disk.path, false, !disk.read_only);
    }
    for (const std::filesystem::path& backing : host.backing_files) {
        want(backing, false, false);
    }
    if (config.console.output == VmConfig::ConsoleOutput::File) {
        want(config.console.path, false, true);
    }
    // Sorted by path, each folder comes before what is inside it.
    std::vector<JailBind> binds;
    for (auto& [path, bind] : wanted) {
        bool covered = std::any_of(binds.begin(), binds.end(), [&](const JailBind& shown) {
            return shown.directory && inside(path, shown.path) &&
                   (shown.writable || !bind.writable);
        });
        if (!covered) {
            binds.push_back(bind);
        }
    }
    return binds;
}

std::vector<std::string> jail_devices(const VmConfig& config) {
    std::vector<std::string> devices = {"/dev/kvm", "/dev/null", "/dev/urandom"};
    if (!config.nics.empty()) {
        devices.push_back("/dev/net/tun");
        devices.push_back("/dev/vhost-net");
    }
    return devices;
}

std::vector<std::filesystem::path> library_folders() {
    std::vector<std::filesystem::path> folders = {"/usr"};
    for (const char* root : kLibraryRoots) {
        std::error_code error;
        if (std::filesystem::is_directory(std::filesystem::symlink_status(root, error))) {
            folders.emplace_back(root);
        }
    }
    return folders;
}

VmmJail::VmmJail(const std::vector<JailBind>& binds, const std::vector<std::string>& devices,
                 const std::filesystem::path& mount_point, VmmIdentity identity)
    : root_(mount_point), identity_(identity) {
    add(Action::unshare_mounts, "");
    add(Action::make_private, "/");
    add(Action::mount_root, root_.string());
    for (const JailBind& bind : binds) {
        add_parents(bind.path);
        std::string target = (root_ / bind.path.substr(1)).string();
        add(bind.directory ? Action::make_folder : Action::make_file, target);
        add(Action::bind, target, bind.path);
        if (!bind.writable) {
            add(Action::remount_read_only, target);
        }
    }
    for (const char* link : kLibraryRoots) {
        std::error_code error;
        std::filesystem::path text = std::filesystem::read_symlink(link, error);
        if (!error) {
            add(Action::make_link, (root_ / (link + 1)).string(), text.string());
        }
    }
    for (const std::string& device : devices) {
        struct stat st {};
        if (::stat(device.c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) {
            continue;  // not on this host: the VMM says what it misses
        }
        add_parents(device);
        // World-usable nodes stay so; the others become the VM's own.
        mode_t mode = (st.st_mode & 0666) == 0666 ? 0666 : 0600;
        add(Action::make_device, (root_ / device.substr(1)).string(), "", st.st_rdev, mode);
    }
    add_parents("/proc/self");
    add(Action::mount_proc, (root_ / "proc").string());
    add(Action::pivot, root_.string());
    add(Action::seal_root, "/");
}

void VmmJail::add(Action action, std::string target, std::string source, dev_t device,
                  mode_t mode) {
    steps_.push_back(Step{action, std::move(target), std::move(source), device, mode});
}

void VmmJail::add_parents(const std::filesystem::path& path) {
    std::filesystem::path folder = root_;
    for (auto part = std::next(path.begin()); part != path.end(); ++part) {
        if (std::next(part) == path.end()) {
            break;
        }
        folder /= *part;
        if (std::find(made_.begin(), made_.end(), folder.string()) == made_.end()) {
            made_.push_back(folder.string());
            add(Action::make_folder, folder.string());
        }
    }
}

int VmmJail::enter() const noexcept {
    for (size_t index = 0; index < steps_.size(); ++index) {
        const Step& step = steps_[index];
        const char* target = step.target.c_str();
        int result = 0;
        switch (step.action) {
            case Action::unshare_mounts:
                result = ::unshare(CLONE_NEWNS);
                break;
            case Action::make_private:
                result = ::mount(nullptr, target, nullptr, MS_REC | MS_PRIVATE, nullptr);
                break;
            case Action::mount_root:
                result = ::mount("tmpfs", target, "tmpfs", MS_NOSUID, "mode=0755");
                break;
            case Action::make_folder:
                result = ::mkdir(target, 0755);
                break;
            case Action::make_file:
                result = ::mknod(target, S_IFREG | 0644, 0);
                break;
            case Action::bind:
                result = ::mount(step.source.c_str(), target, nullptr, MS_BIND, nullptr);
                break;
            case Action::remount_read_only:
                result = ::mount(nullptr, target, nullptr,
                                 MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, nullptr);
                break;
            case Action::make_device:
                result = ::mknod(target, S_IFCHR | step.mode, step.device);
                if (result == 0 && step.mode != 0666) {
                    result = ::chown(target, identity_.uid, identity_.gid);
                }
                break;
            case Action::make_link:
                result = ::symlink(step.source.c_str(), target);
                break;
            case Action::mount_proc:
                result = ::mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                 "hidepid=invisible,subset=pid");
                break;
            case Action::pivot:
                // pivot_root(".", "."): the old root ends up under the new
                // one at "/", and the detaching unmount takes it away.
                result = ::chdir(target);
                if (result == 0) {
                    result = static_cast<int>(::syscall(SYS_pivot_root, ".", "."));
                }
                if (result == 0) {
                    result = ::umount2(".", MNT_DETACH);
                }
                if (result == 0) {
                    result = ::chdir("/");
                }
                break;
            case Action::seal_root:
                result = ::mount(nullptr, target, nullptr,
                                 MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, nullptr);
                break;
        }
        bool already_there = errno == EEXIST && (step.action == Action::make_folder ||
                                                 step.action == Action::make_file);
        if (result != 0 && !already_there) {
            return static_cast<int>(index);
        }
    }
    return -1;
}

std::string VmmJail::describe(int index) const {
    if (index < 0 || static_cast<size_t>(index) >= steps_.size()) {
        return "an unknown step";
    }
    const Step& step = steps_[static_cast<size_t>(index)];
    switch (step.action) {
        case Action::unshare_mounts:
            return "a mount namespace (unshare)";
        case Action::make_private:
            return "private mount propagation";
        case Action::mount_root:
            return fmt::format("a tmpfs on {}", step.target);
        case Action::make_folder:
            return fmt::format("the folder {}", step.target);
        case Action::make_file:
            return fmt::format("the mount point {}", step.target);
        case Action::bind:
            return fmt::format("binding {} on {}", step.source, step.target);
        case Action::remount_read_only:
            return fmt::format("{} read-only", step.target);
        case Action::make_device:
            return fmt::format("the device node {}", step.target);
        case Action::make_link:
            return fmt::format("the link {} -> {}", step.target, step.source);
        case Action::mount_proc:
            return fmt::format("/proc (hidepid=invisible) on {}", step.target);
        case Action::pivot:
            return fmt::format("pivot_root into {}", step.target);
        case Action::seal_root:
            return "the new root read-only";
    }
    return "an unknown step";
}

void hand_over_files(const VmConfig& config, const std::filesystem::path& vm_folder,
                     const std::filesystem::path& run_folder, VmmIdentity identity) {
    std::error_code error;
    std::filesystem::create_directories(run_folder, error);
    if (error) {
        fail("{}: cannot create: {}", run_folder.string(), error.message());
    }
    give(run_folder, identity);
    if (::chmod(run_folder.c_str(), 0700) != 0) {
        fail_errno("{}: chmod", run_folder.string());
    }
    std::filesystem::path folder = resolved(vm_folder);
    if (config.console.output == VmConfig::ConsoleOutput::File &&
        inside(resolved(config.console.path), folder)) {
        std::filesystem::path console = resolved(config.console.path);
        UniqueFd created(::open(console.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640));
        if (!created) {
            fail_errno("console.path {}: cannot create", console.string());
        }
        give(console, identity);
    }
    for (const VmConfig::Disk& disk : config.disks) {
        std::filesystem::path image = resolved(disk.path);
        if (!disk.read_only && inside(image, folder) && std::filesystem::is_regular_file(image)) {
            give(image, identity);
        }
    }
}

}  // namespace vireo
