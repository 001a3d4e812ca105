#include "host/vmm_supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>

#include "block/image_factory.h"
#include "host/api_error.h"
#include "host/vmm_control.h"
#include "host/vmm_jail.h"
#include "net/port_channel.h"
#include "vmm/machine_exit.h"

namespace vireo {
namespace {

// Whether a VMM that ended before its control socket answered had run its
// guest: it exited with a status the guest decided (powered off, debug exit,
// reset, triple fault, panic), not that of bad input or no KVM, nor of the
// VMM's own failure. Peeks (WNOWAIT): the process stays for whoever reaps it.
bool guest_ran(pid_t pid) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0 ||
        info.si_code != CLD_EXITED) {
        return false;
    }
    auto status_of = [](MachineExit::Reason reason) {
        MachineExit end;
        end.reason = reason;
        return end.exit_status();
    };
    return info.si_status != status_of(MachineExit::Reason::ConfigError) &&
           info.si_status != status_of(MachineExit::Reason::VmmFailure);
}

constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr auto kStopTimeout = std::chrono::seconds(10);

// Why the child could not execute the VMM, written to its parent.
struct ChildFailure {
    enum class Stage : char { lock, files, cgroup, jail, identity, exec };
    Stage stage;
    int step;   // the jail's step, for Stage::jail
    int error;  // errno
};

// The backing files of the VM's qcow2 disks, which its jail must show too; a
// disk that cannot be read is left to the VMM, whose error names it.
std::vector<std::filesystem::path> backing_files(const VmConfig& config) {
    std::vector<std::filesystem::path> files;
    for (const VmConfig::Disk& disk : config.disks) {
        try {
            ImageInfo info = image_info(disk.path);
            files.insert(files.end(), info.backing_chain.begin(), info.backing_chain.end());
        } catch (const Error&) {
            continue;
        }
    }
    return files;
}

// The definition the VMM runs: the VM folder's vm.json as vireod resolved it
// (absolute paths; each port-group vNIC's team), readable by the VM's uid.
// The run folder is the VM's own: whatever its last VMM left under that name
// (a link, a pipe) is removed, and the file made anew without following one.
void write_definition(const std::filesystem::path& file, const VmConfig& config) {
    if (::unlink(file.c_str()) != 0 && errno != ENOENT) {
        fail_errno("cannot replace {}", file.string());
    }
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd) {
        fail_errno("cannot create {}", file.string());
    }
    std::string text = config.to_json().dump(2) + "\n";
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
        ::fchmod(fd.get(), 0644) != 0) {
        fail_errno("cannot write {}", file.string());
    }
}

int pidfd_open(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

// The last lines of a log, for an error message.
std::string tail_of(const std::filesystem::path& path, size_t bytes = 600) {
    std::ifstream file(path);
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (text.size() > bytes) {
        text = text.substr(text.size() - bytes);
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

// Waits until `pidfd`'s process has ended, for at most `timeout`.
bool wait_for_end(int pidfd, std::chrono::milliseconds timeout) {
    pollfd event{pidfd, POLLIN, 0};
    return ::poll(&event, 1, static_cast<int>(timeout.count())) == 1;
}

// Writes `number` in decimal without allocating (between fork and exec).
size_t format_decimal(long number, char* text) {
    char reversed[24];
    size_t length = 0;
    do {
        reversed[length++] = static_cast<char>('0' + number % 10);
        number /= 10;
    } while (number > 0);
    for (size_t i = 0; i < length; ++i) {
        text[i] = reversed[length - 1 - i];
    }
    text[length] = '\n';
    return length + 1;
}

}  // namespace

VmmSupervisor::VmmSupervisor(std::filesystem::path run_dir, std::string vmm_binary,
                             const JailSettings& jail, ExitHandler on_exit)
    : run_dir_(std::move(run_dir)),
      vmm_binary_(std::filesystem::absolute(vmm_binary).string()),
      jail_mount_point_(run_dir_ / "jail-root"),
      identities_(jail.state_dir, jail.uid_base),
      cgroups_(jail.cgroup_root),
      network_(jail.state_dir),
      on_exit_(std::move(on_exit)),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!epoll_) {
        fail_errno("epoll_create1");
    }
    std::filesystem::create_directories(run_dir_ / "vms");
    std::filesystem::create_directories(jail_mount_point_);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = stop_event_.fd();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stop_event_.fd(), &event);
    watcher_ = std::thread([this] { run_watcher(); });
}

VmmSupervisor::~VmmSupervisor() {
    stop_event_.signal();
    watcher_.join();
}

std::filesystem::path VmmSupervisor::run_folder_of(std::string_view vm) const {
    return run_dir_ / "vms" / vm;
}
std::filesystem::path VmmSupervisor::socket_of(std::string_view vm) const {
    return run_folder_of(vm) / "control.sock";
}
std::filesystem::path VmmSupervisor::pid_file_of(std::string_view vm) const {
    return run_dir_ / "vms" / fmt::format("{}.pid", vm);
}
std::filesystem::path VmmSupervisor::report_of(std::string_view vm) const {
    return run_folder_of(vm) / "report.json";
}

void VmmSupervisor::watch(const std::string& vm, Vmm vmm) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = vmm.pidfd.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, vmm.pidfd.get(), &event) != 0) {
        fail_errno("epoll_ctl");
    }
    if (vmm.channel) {
        event.data.fd = vmm.channel.get();
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, vmm.channel.get(), &event) != 0) {
            fail_errno("epoll_ctl");
        }
    }
    vmms_.emplace(vm, std::move(vmm));
}

void VmmSupervisor::reattach(const std::vector<VmEntry>& vms) {
    std::lock_guard lock(mutex_);
    for (const VmEntry& vm : vms) {
        // The TAPs vireod made for the VM, to delete when its VMM ends, or
        // now when it ended while no vireod watched.
        VmPorts ports;
        if (std::optional<VmmIdentity> identity = identities_.find(vm.name)) {
            try {
                ports = VmPorts::of_running(vm.name, VmConfig::from_file(vm.definition().string()),
                                            {identity->uid, identity->gid});
            } catch (const Error& error) {
                spdlog::warn("VM '{}': its vNICs' TAPs stay as they are: {}", vm.name,
                             error.what());
            }
        }
        std::filesystem::path pid_file = pid_file_of(vm.name);
        std::ifstream file(pid_file);
        pid_t pid = 0;
        if (!(file >> pid) || pid <= 0) {
            ports.release();
            continue;
        }
        Vmm vmm{pid,
                UniqueFd(pidfd_open(pid)),
                false,
                socket_of(vm.name),
                VmmCgroups::of_vmm(pid, vm.name),
                std::move(ports),
                UniqueFd()};  // its port channel was the vireod's before
        std::ifstream cmdline(fmt::format("/proc/{}/cmdline", pid));
        std::string arguments((std::istreambuf_iterator<char>(cmdline)),
                              std::istreambuf_iterator<char>());
        if (!vmm.pidfd || arguments.find(vmm.socket.string()) == std::string::npos) {
            std::error_code error;
            std::filesystem::remove(pid_file, error);  // that VMM is gone
            vmm.ports.release();
            continue;
        }
        spdlog::info("VM '{}': adopted its running VMM (pid {})", vm.name, pid);
        watch(vm.name, std::move(vmm));
    }
}

void VmmSupervisor::start(const VmEntry& vm, const std::function<void()>& started) {
    std::unique_lock lock(mutex_);
    if (vmms_.contains(vm.name) || starting_.contains(vm.name)) {
        refuse(409, "VM '{}' is already running", vm.name);
    }
    std::filesystem::path socket = socket_of(vm.name);
    std::filesystem::path pid_file = pid_file_of(vm.name);
    std::filesystem::path report = report_of(vm.name);
    std::error_code error;
    std::filesystem::remove(socket, error);
    std::filesystem::remove(report, error);

    // Everything the child needs, made before fork: after it, only system calls.
    std::optional<VmmJail> jail;
    VmmIdentity identity;
    std::optional<std::filesystem::path> cgroup;
    UniqueFd cgroup_procs;
    VmPorts ports;
    UniqueFd channel;      // vireod's end of the port channel
    UniqueFd vmm_channel;  // the VMM's, inherited across exec
    std::filesystem::path definition = run_folder_of(vm.name) / "definition.json";
    try {
        VmConfig config = VmConfig::from_file(vm.definition().string());
        identity = identities_.of(vm.name);
        std::filesystem::path run_folder = run_folder_of(vm.name);
        hand_over_files(config, vm.folder, run_folder, identity);
        JailHostPaths host{vm.folder, run_folder, vmm_binary_, library_folders(),
                           backing_files(config)};
        jail.emplace(jail_binds(config, host), jail_devices(config), jail_mount_point_, identity);
        cgroup = cgroups_.create(vm.name);
        if (cgroup) {
            cgroup_procs = VmmCgroups::open_procs(*cgroup);
        }
        // Last but two: it undoes itself when it fails.
        ports = VmPorts::prepare(vm.name, config, {identity.uid, identity.gid}, network_);
        if (std::any_of(config.nics.begin(), config.nics.end(),
                        [](const VmConfig::Nic& nic) { return !nic.portgroup.empty(); })) {
            int pair[2];
            if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
                fail_errno("socketpair for the port channel");
            }
            channel = UniqueFd(pair[0]);
            vmm_channel = UniqueFd(pair[1]);
            config.port_channel_fd = vmm_channel.get();  // the same number in the child
        }
        write_definition(definition, config);
    } catch (const ApiError&) {
        ports.release();
        if (cgroup) {
            VmmCgroups::remove(*cgroup);
        }
        throw;
    } catch (const Error& problem) {
        ports.release();
        if (cgroup) {
            VmmCgroups::remove(*cgroup);
        }
        refuse(500, "VM '{}': cannot prepare its VMM's jail: {}", vm.name, problem.what());
    }
    std::string lock_path = (vm.folder / ".vireo-lock").string();
    std::string log_path = (vm.folder / "vmm.log").string();
    std::string pid_temp = pid_file.string() + ".new";
    std::string pid_path = pid_file.string();
    std::vector<std::string> arguments = {vmm_binary_,        "--config",      definition.string(),
                                          "--control-socket", socket.string(), "--report",
                                          report.string(),    "--seccomp"};
    std::vector<char*> argv;
    for (std::string& argument : arguments) {
        argv.push_back(argument.data());
    }
    argv.push_back(nullptr);
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        fail_errno("pipe2");
    }
    UniqueFd from_child(pipe_fds[0]);
    UniqueFd to_parent(pipe_fds[1]);

    pid_t pid = ::fork();
    if (pid < 0) {
        fail_errno("fork");
    }
    if (pid == 0) {
        auto give_up = [&](ChildFailure::Stage stage, int step = -1) {
            ChildFailure failure{stage, step, errno};
            (void)!::write(to_parent.get(), &failure, sizeof(failure));
            ::_exit(1);
        };
        ::setsid();
        ::sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT, 0644);  // kept across exec
        if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
            give_up(ChildFailure::Stage::lock);
        }
        int null_fd = ::open("/dev/null", O_RDONLY);
        int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (null_fd < 0 || log_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 ||
            ::dup2(log_fd, 2) < 0) {
            give_up(ChildFailure::Stage::files);
        }
        char text[24];
        size_t length = format_decimal(::getpid(), text);
        int pid_fd = ::open(pid_temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (pid_fd < 0 || ::write(pid_fd, text, length) != static_cast<ssize_t>(length) ||
            ::rename(pid_temp.c_str(), pid_path.c_str()) != 0) {
            give_up(ChildFailure::Stage::files);
        }
        if (cgroup_procs && ::write(cgroup_procs.get(), "0", 1) != 1) {
            give_up(ChildFailure::Stage::cgroup);
        }
        if (int failed = jail->enter(); failed >= 0) {
            give_up(ChildFailure::Stage::jail, failed);
        }
        // Raw system calls: glibc's wrappers would signal the parent's other
        // threads, which the child does not have.
        gid_t group = identity.gid;
        if (::syscall(SYS_setgroups, 0, nullptr) != 0 ||
            ::syscall(SYS_setresgid, group, group, group) != 0 ||
            ::syscall(SYS_setresuid, identity.uid, identity.uid, identity.uid) != 0) {
            give_up(ChildFailure::Stage::identity);
        }
        ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (vmm_channel && ::fcntl(vmm_channel.get(), F_SETFD, 0) != 0) {
            give_up(ChildFailure::Stage::files);
        }
        ::execv(argv[0], argv.data());
        give_up(ChildFailure::Stage::exec);
    }
    to_parent.reset();
    vmm_channel.reset();
    ChildFailure failure{};
    ssize_t got;
    do {
        got = ::read(from_child.get(), &failure, sizeof(failure));
    } while (got < 0 && errno == EINTR);
    if (got > 0) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        std::filesystem::remove(pid_file, error);
        if (cgroup) {
            VmmCgroups::remove(*cgroup);
        }
        ports.release();
        std::string why = std::strerror(failure.error);
        switch (failure.stage) {
            case ChildFailure::Stage::lock:
                refuse(409, "VM '{}' is already running: another VMM holds {}", vm.name, lock_path);
            case ChildFailure::Stage::exec:
                refuse(500, "VM '{}': cannot run {}: {}", vm.name, vmm_binary_, why);
            case ChildFailure::Stage::cgroup:
                refuse(500, "VM '{}': cannot enter its cgroup {}: {}", vm.name, cgroup->string(),
                       why);
            case ChildFailure::Stage::jail:
                refuse(500, "VM '{}': cannot set up its VMM's jail: {}: {}", vm.name,
                       jail->describe(failure.step), why);
            case ChildFailure::Stage::identity:
                refuse(500, "VM '{}': cannot become uid/gid {}: {}", vm.name, identity.uid, why);
            case ChildFailure::Stage::files:
                refuse(500, "VM '{}': cannot set up its VMM's files in {} or {}: {}", vm.name,
                       vm.folder.string(), run_dir_.string(), why);
        }
    }

    Vmm vmm{
        pid, UniqueFd(pidfd_open(pid)), true, socket, cgroup, std::move(ports), std::move(channel)};
    if (!vmm.pidfd) {
        fail_errno("pidfd_open");
    }
    // Waited for without the lock, so that other VMs start and requests are
    // answered meanwhile; marked as starting, so that this VM is not started twice.
    struct StartingMark {
        std::unique_lock<std::mutex>& lock;
        std::set<std::string, std::less<>>& starting;
        const std::string& name;
        ~StartingMark() {
            if (!lock.owns_lock()) {
                lock.lock();
            }
            starting.erase(name);
        }
    } mark{lock, starting_, vm.name};
    starting_.insert(vm.name);
    lock.unlock();
    // Up once its control socket answers; a VMM that ends first says why in its report.
    auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    while (true) {
        if (wait_for_end(vmm.pidfd.get(), std::chrono::milliseconds(0))) {
            if (guest_ran(pid)) {
                break;  // a short guest on a fast KVM: watch() records its end
            }
            int status = 0;
            ::waitpid(pid, &status, 0);
            std::filesystem::remove(pid_file, error);
            release(vmm);
            std::ifstream report_file(report);
            nlohmann::json how = nlohmann::json::parse(report_file, nullptr, false);
            std::string detail = how.is_object() ? how.value("detail", std::string()) : "";
            refuse(500, "VM '{}' did not start: {}", vm.name,
                   detail.empty() ? tail_of(vm.folder / "vmm.log") : detail);
        }
        if (std::filesystem::exists(socket, error)) {
            try {
                vmm_request(socket, "info", nlohmann::json::object(),
                            std::chrono::milliseconds(500));
                break;
            } catch (const Error&) {
                // not listening yet
            }
        }
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            std::filesystem::remove(pid_file, error);
            release(vmm);
            refuse(500, "VM '{}': its VMM did not answer on {} within {} s; killed", vm.name,
                   socket.string(), kStartTimeout.count());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    spdlog::info("VM '{}': started (pid {}, uid {})", vm.name, pid, identity.uid);
    started();
    lock.lock();
    watch(vm.name, std::move(vmm));
}

void VmmSupervisor::release(Vmm& vmm) {
    if (vmm.cgroup) {
        VmmCgroups::remove(*vmm.cgroup);
    }
    vmm.ports.release();
}

std::filesystem::path VmmSupervisor::socket_for_request(std::string_view vm) {
    std::lock_guard lock(mutex_);
    auto found = vmms_.find(vm);
    if (found == vmms_.end()) {
        refuse(409, "VM '{}' is not running", vm);
    }
    return found->second.socket;
}

nlohmann::json VmmSupervisor::request(std::string_view vm, const std::string& command,
                                      const nlohmann::json& arguments,
                                      std::chrono::milliseconds timeout) {
    std::filesystem::path socket = socket_for_request(vm);
    try {
        return vmm_request(socket, command, arguments, timeout);
    } catch (const ApiError&) {
        throw;
    } catch (const Error& error) {
        refuse(409, "VM '{}': {}", vm, error.what());
    }
}

void VmmSupervisor::stop(std::string_view vm) {
    int pidfd;
    {
        std::lock_guard lock(mutex_);
        auto found = vmms_.find(vm);
        if (found == vmms_.end()) {
            refuse(409, "VM '{}' is not running", vm);
        }
        pidfd = ::dup(found->second.pidfd.get());
    }
    UniqueFd own(pidfd);
    try {
        request(vm, "stop");
    } catch (const Error& error) {
        spdlog::warn("VM '{}': stop refused ({}); killing its VMM", vm, error.what());
    }
    if (!wait_for_end(own.get(), kStopTimeout)) {
        ::syscall(SYS_pidfd_send_signal, own.get(), SIGKILL, nullptr, 0);
        wait_for_end(own.get(), std::chrono::seconds(5));
    }
    // Returns once the watcher has seen the end, so that the VM reads as off.
    for (int i = 0; i < 1500 && running(vm); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void VmmSupervisor::shutdown(std::string_view vm) {
    request(vm, "shutdown");
}
void VmmSupervisor::pause(std::string_view vm) {
    request(vm, "pause");
}
void VmmSupervisor::resume(std::string_view vm) {
    request(vm, "resume");
}

nlohmann::json VmmSupervisor::snapshot(std::string_view vm, const std::string& name) {
    // Each disk's snapshot rewrites its tables and syncs: long on big disks.
    return request(vm, "snapshot", {{"name", name}}, std::chrono::minutes(10));
}

size_t VmmSupervisor::console_input(std::string_view vm, const std::string& hex) {
    return request(vm, "console-input", {{"hex", hex}}).value("accepted", size_t{0});
}

bool VmmSupervisor::running(std::string_view vm) {
    std::lock_guard lock(mutex_);
    return vmms_.contains(vm) || starting_.contains(vm);
}

std::optional<nlohmann::json> VmmSupervisor::info(std::string_view vm) {
    pid_t pid;
    std::filesystem::path socket;
    {
        std::lock_guard lock(mutex_);
        auto found = vmms_.find(vm);
        if (found == vmms_.end()) {
            return std::nullopt;
        }
        pid = found->second.pid;
        socket = found->second.socket;
    }
    nlohmann::json result;
    try {
        result =
            vmm_request(socket, "info", nlohmann::json::object(), std::chrono::milliseconds(2000));
    } catch (const Error& error) {
        result = {{"state", "unknown"}, {"error", error.what()}};
    }
    result["pid"] = pid;
    return result;
}

void VmmSupervisor::run_watcher() {
    while (true) {
        epoll_event events[16];
        int count = ::epoll_wait(epoll_.get(), events, 16, -1);
        if (count < 0 && errno == EINTR) {
            continue;
        }
        for (int i = 0; i < count; ++i) {
            if (events[i].data.fd == stop_event_.fd()) {
                return;
            }
            std::string vm;
            bool asks = false;  // its port channel, not its end
            {
                std::lock_guard lock(mutex_);
                for (const auto& [name, vmm] : vmms_) {
                    if (vmm.pidfd.get() == events[i].data.fd ||
                        vmm.channel.get() == events[i].data.fd) {
                        vm = name;
                        asks = vmm.channel.get() == events[i].data.fd;
                    }
                }
            }
            if (!vm.empty() && asks) {
                serve_port_channel(vm);
            } else if (!vm.empty()) {
                ended(vm);
            }
        }
    }
}

void VmmSupervisor::serve_port_channel(const std::string& vm) {
    std::lock_guard lock(mutex_);
    Vmm& vmm = vmms_.find(vm)->second;
    char message[128];
    ssize_t length = ::recv(vmm.channel.get(), message, sizeof(message), MSG_DONTWAIT);
    if (length < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (length <= 0) {  // the VMM is ending; its pidfd says so next
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, vmm.channel.get(), nullptr);
        vmm.channel.reset();
        return;
    }
    std::string answer = "ok";
    std::optional<PortChannel::Request> request =
        PortChannel::parse(std::string_view(message, static_cast<size_t>(length)));
    try {
        if (!request) {
            fail("not a request of the port channel");
        }
        vmm.ports.follow_mac(request->nic, request->mac);
        spdlog::info("VM '{}': vNIC {} now answers to {}; its port follows", vm, request->nic,
                     format_mac(request->mac));
    } catch (const Error& error) {
        answer = fmt::format("refused: {}", error.what());
        spdlog::warn("VM '{}': port channel: {}", vm, answer);
    }
    (void)!::send(vmm.channel.get(), answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

void VmmSupervisor::ended(const std::string& vm) {
    int status = 0;
    std::optional<std::filesystem::path> cgroup;
    VmPorts ports;
    {
        std::lock_guard lock(mutex_);
        auto found = vmms_.find(vm);
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, found->second.pidfd.get(), nullptr);
        if (found->second.channel) {
            ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, found->second.channel.get(), nullptr);
            found->second.channel.reset();
        }
        if (found->second.child) {
            ::waitpid(found->second.pid, &status, 0);
        }
        cgroup = found->second.cgroup;
        ports = std::move(found->second.ports);
    }
    // Its cgroup and TAPs go before the VM reads as off, so that a start
    // right after (a reset) finds none being removed; without the lock,
    // which this may hold for seconds.
    if (cgroup) {
        VmmCgroups::remove(*cgroup);
    }
    ports.release();
    {
        std::lock_guard lock(mutex_);
        vmms_.erase(vm);
    }
    std::error_code error;
    std::filesystem::remove(pid_file_of(vm), error);
    std::ifstream report_file(report_of(vm));
    nlohmann::json how = nlohmann::json::parse(report_file, nullptr, false);
    if (!how.is_object()) {
        // Killed before it could write one: by whom, when it was our child.
        std::string detail = "the VMM ended without a report (killed)";
        if (WIFSIGNALED(status)) {
            detail = WTERMSIG(status) == SIGSYS
                         ? "the VMM made a system call its seccomp policy forbids (SIGSYS)"
                         : fmt::format("the VMM was killed by signal {} ({})", WTERMSIG(status),
                                       sigabbrev_np(WTERMSIG(status)));
        }
        how = {{"reason", "vmm-killed"}, {"detail", detail}};
    }
    spdlog::info("VM '{}': powered off ({})", vm, how.value("reason", std::string("?")));
    on_exit_(vm, how);
}

}  // namespace vireo
