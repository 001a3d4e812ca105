#include "host/vmm_cgroup.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/error.h"

namespace vireo {
namespace {

const std::filesystem::path kCgroupMount = "/sys/fs/cgroup";
constexpr std::string_view kVmsFolder = "vireo-vms";
// How long a VMM's teardown child may take to close the KVM VM before
// remove() kills it; the kernel finishes the teardown either way.
constexpr auto kEmptyGrace = std::chrono::seconds(5);
constexpr auto kKilledGrace = std::chrono::seconds(2);

bool is_cgroup2(const std::filesystem::path& path) {
    struct statfs fs {};
    return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

std::string read_text(const std::filesystem::path& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

// rmdir until it works or `deadline` passes; true once the cgroup is gone.
bool remove_until(const std::filesystem::path& cgroup,
                  std::chrono::steady_clock::time_point deadline) {
    while (true) {
        if (::rmdir(cgroup.c_str()) == 0 || errno == ENOENT) {
            return true;
        }
        if (errno != EBUSY || std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace

std::optional<std::string> VmmCgroups::unified_path(std::string_view proc_cgroup_text) {
    std::istringstream lines{std::string(proc_cgroup_text)};
    std::string line;
    while (std::getline(lines, line)) {
        if (line.starts_with("0::/")) {
            return line.substr(3);
        }
    }
    return std::nullopt;
}

VmmCgroups::VmmCgroups(std::optional<std::filesystem::path> root) {
    if (root) {
        if (!is_cgroup2(*root)) {
            fail("--cgroup-root {}: not a folder of a cgroup2 file system", root->string());
        }
        root_ = *root;
        return;
    }
    if (!is_cgroup2(kCgroupMount)) {
        spdlog::warn(
            "{} is not a cgroup2 file system (cgroup v1 or hybrid host): VMMs run in vireod's own "
            "cgroup, without one of their own",
            kCgroupMount.string());
        return;
    }
    std::optional<std::string> own = unified_path(read_text("/proc/self/cgroup"));
    if (!own) {
        spdlog::warn(
            "/proc/self/cgroup names no cgroup v2: VMMs run without a cgroup of their own");
        return;
    }
    root_ = kCgroupMount / own->substr(1);
}

std::optional<std::filesystem::path> VmmCgroups::create(std::string_view vm) const {
    if (!enabled()) {
        return std::nullopt;
    }
    std::filesystem::path cgroup = root_ / kVmsFolder / vm;
    std::error_code error;
    std::filesystem::create_directories(cgroup, error);
    if (error) {
        fail("VM '{}': cannot create its cgroup {}: {}", vm, cgroup.string(), error.message());
    }
    return cgroup;
}

UniqueFd VmmCgroups::open_procs(const std::filesystem::path& cgroup) {
    std::filesystem::path procs = cgroup / "cgroup.procs";
    UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
        fail_errno("{}: cannot open", procs.string());
    }
    return fd;
}

void VmmCgroups::remove(const std::filesystem::path& cgroup) {
    if (remove_until(cgroup, std::chrono::steady_clock::now() + kEmptyGrace)) {
        return;
    }
    std::ofstream kill(cgroup / "cgroup.kill");
    kill << "1" << std::flush;
    if (!remove_until(cgroup, std::chrono::steady_clock::now() + kKilledGrace)) {
        spdlog::warn("{}: cannot remove ({}); processes are left in it", cgroup.string(),
                     std::strerror(errno));
    }
}

std::optional<std::filesystem::path> VmmCgroups::of_vmm(pid_t pid, std::string_view vm) {
    std::optional<std::string> path = unified_path(read_text(fmt::format("/proc/{}/cgroup", pid)));
    if (!path || !path->ends_with(fmt::format("/{}/{}", kVmsFolder, vm))) {
        return std::nullopt;
    }
    return kCgroupMount / path->substr(1);
}

}  // namespace vireo
