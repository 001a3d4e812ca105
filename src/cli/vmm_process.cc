#include "cli/vmm_process.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>

#include "base/error.h"
#include "base/unique_fd.h"
#include "host/vmm_control.h"

namespace vireo::cli {

namespace {

UniqueFd memfd_with(const std::string& name, const std::string& contents) {
    // Not close-on-exec: the child inherits it and reads it as /dev/fd/N.
    UniqueFd fd(::memfd_create(name.c_str(), 0));
    if (!fd) {
        fail_errno("memfd_create");
    }
    if (::write(fd.get(), contents.data(), contents.size()) !=
        static_cast<ssize_t>(contents.size())) {
        fail_errno("writing the VM definition");
    }
    return fd;
}

std::string read_all(int fd) {
    std::string text;
    char buffer[4096];
    ssize_t got;
    off_t offset = 0;
    while ((got = ::pread(fd, buffer, sizeof(buffer), offset)) > 0) {
        text.append(buffer, static_cast<size_t>(got));
        offset += got;
    }
    return text;
}

}  // namespace

VmmResult run_vmm(const nlohmann::json& definition, std::vector<UniqueFd> handed_over) {
    std::string vmm = vmm_binary();
    if (::access(vmm.c_str(), X_OK) != 0) {
        fail("{}: not found or not executable (set VIREO_VMM to the vireo-vmm binary)", vmm);
    }
    UniqueFd config = memfd_with("vireo-vm-definition", definition.dump(2));
    UniqueFd report = memfd_with("vireo-vm-report", "");
    std::string config_arg = "/dev/fd/" + std::to_string(config.get());
    std::string report_arg = "/dev/fd/" + std::to_string(report.get());

    pid_t child = ::fork();
    if (child < 0) {
        fail_errno("fork");
    }
    if (child == 0) {
        const char* argv[] = {vmm.c_str(), "--config",         config_arg.c_str(),
                              "--report",  report_arg.c_str(), nullptr};
        ::execv(vmm.c_str(), const_cast<char* const*>(argv));
        _exit(127);
    }
    handed_over.clear();
    // The VMM handles Ctrl-C and friends itself (the terminal is raw anyway);
    // this process only waits for it.
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            fail_errno("waitpid");
        }
    }
    VmmResult result{};
    result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::string text = read_all(report.get());
    result.report = nlohmann::json::parse(text, nullptr, false);
    if (result.report.is_discarded()) {
        result.report = {{"reason", "vmm-failure"},
                         {"exit_status", result.exit_status},
                         {"detail", WIFSIGNALED(status) ? std::string("vireo-vmm killed by ") +
                                                              strsignal(WTERMSIG(status))
                                                        : "vireo-vmm ended without a report"}};
    }
    return result;
}

}  // namespace vireo::cli
