// vireod, the host agent: owns this host's VMs (folders on its datastores),
// runs each powered-on VM as a vireo-vmm process, and serves the REST API
// (host_api.h) on a Unix socket and, with --listen, on TCP with TLS. Runs in the foreground
// (systemd's Type=simple, or a test); its VMs outlive it, and the next vireod adopts them.
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "base/error.h"
#include "base/unique_fd.h"
#include "host/api_server.h"
#include "host/host_api.h"
#include "host/host_database.h"
#include "host/network_registry.h"
#include "host/network_routes.h"
#include "host/state_file.h"
#include "host/tls_identity.h"
#include "host/vm_inventory.h"
#include "host/vmm_control.h"
#include "host/vmm_supervisor.h"

namespace vireo {
namespace {

std::filesystem::path default_run_dir() {
    const char* dir = std::getenv("VIREO_RUN_DIR");
    return dir && *dir ? dir : "/run/vireo";
}

// One vireod per state folder: a second one would supervise the same VMs.
UniqueFd lock_state(const std::filesystem::path& state_dir) {
    std::filesystem::create_directories(state_dir);
    std::filesystem::path path = state_dir / "vireod.lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) {
        fail_errno("{}: cannot open", path.string());
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        fail("another vireod already serves {} (it holds {})", state_dir.string(), path.string());
    }
    return fd;
}

struct Listen {
    std::string address;  // empty: the Unix socket only
    std::filesystem::path certificate;
    std::filesystem::path key;
};

int serve(const std::filesystem::path& state_dir, const std::filesystem::path& run_dir,
          const std::filesystem::path& socket, const std::string& vmm, const Listen& listen,
          const VmmSupervisor::JailSettings& jail) {
    UniqueFd lock = lock_state(state_dir);
    HostDatabase database(state_dir / "vireod.db");
    VmInventory inventory(database);
    inventory.datastores().import_legacy_file(state_dir);
    inventory.recover();
    VmmSupervisor supervisor(
        run_dir, vmm, jail, [&](const std::string& vm, const nlohmann::json& how) {
            std::string detail = how.value("detail", std::string());
            database.add_event(
                vm, "vm.powered-off",
                fmt::format("ended: {}{}", how.value("reason", std::string("unknown")),
                            detail.empty() ? "" : " (" + detail + ")"));
        });
    supervisor.reattach(inventory.list());
    HostApi::Listener listener;
    std::optional<TlsIdentity> identity;
    if (!listen.address.empty()) {
        identity = tls_identity(state_dir, listen.certificate, listen.key);
        listener = {listen.address, identity->fingerprint};
    }
    TaskManager tasks(database);
    // The steering keepers are `vireo switch steer`: the vireo beside vireod.
    NetworkRegistry network(
        state_dir, std::filesystem::read_symlink("/proc/self/exe").parent_path() / "vireo");
    NetworkRoutes network_routes(network, database, state_dir);
    HostApi api(database, inventory, supervisor, tasks, network_routes, listener);
    ApiServer server([&](const ApiRequest& request) { return api.handle(request); },
                     [&](const ApiRequest& request) { return api.open_websocket(request); });
    server.listen_unix(socket);
    spdlog::info("vireod: serving {} (state {}, VMMs {})", socket.string(), state_dir.string(),
                 vmm);
    if (identity) {
        server.listen_tls(listen.address, *identity);
        spdlog::info("vireod: serving https://{} with TLS (certificate {}, SHA-256 {})",
                     listen.address, identity->certificate.string(), identity->fingerprint);
    }
    server.run();
    spdlog::info("vireod: stopped; running VMs keep running");
    return 0;
}

}  // namespace
}  // namespace vireo

int main(int argc, char** argv) {
    CLI::App app{"vireod: the Vireo host agent (REST API on a Unix socket, and TCP with TLS)"};
    std::string state_dir = vireo::StateFile::default_dir().string();
    std::string run_dir = vireo::default_run_dir().string();
    std::string socket;
    std::string vmm;
    std::string log_level = "info";
    uid_t vmm_uid_base = vireo::kDefaultVmmUidBase;
    std::string cgroup_root;
    app.add_option("--state-dir", state_dir,
                   "host state: the database, datastores ($VIREO_STATE_DIR, /var/lib/vireo)");
    app.add_option("--run-dir", run_dir,
                   "runtime files: VMM sockets and pid files ($VIREO_RUN_DIR, /run/vireo)");
    app.add_option("--socket", socket, "the API's Unix socket (default RUN_DIR/vireod.sock)");
    app.add_option("--vmm", vmm, "the vireo-vmm binary (default: next to vireod, or $VIREO_VMM)");
    vireo::Listen listen;
    app.add_option("--listen", listen.address,
                   "also serve the API on TCP with TLS and tokens, e.g. [::]:8443 or "
                   "192.0.2.10:8443");
    app.add_option("--tls-cert", listen.certificate,
                   "the TLS certificate (PEM; default: the host's own, made self-signed in "
                   "STATE_DIR/tls)");
    app.add_option("--tls-key", listen.key, "the TLS certificate's private key (PEM)");
    app.add_option("--vmm-uid-base", vmm_uid_base,
                   "the first uid and gid of the VMMs; each VM has its own from there")
        ->capture_default_str();
    app.add_option("--cgroup-root", cgroup_root,
                   "the cgroup (v2 folder) under which each VMM gets vireo-vms/NAME (default: "
                   "vireod's own)");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
    CLI11_PARSE(app, argc, argv);
    spdlog::set_level(spdlog::level::from_str(log_level));
    try {
        std::filesystem::path run = std::filesystem::absolute(run_dir);
        std::filesystem::path state = std::filesystem::absolute(state_dir);
        // What it starts (the switches' steering keepers) keeps the same state.
        ::setenv("VIREO_STATE_DIR", state.c_str(), 1);
        vireo::VmmSupervisor::JailSettings jail{state, vmm_uid_base, std::nullopt};
        if (!cgroup_root.empty()) {
            jail.cgroup_root = cgroup_root;
        }
        return vireo::serve(state, run,
                            socket.empty() ? run / "vireod.sock" : std::filesystem::path(socket),
                            vmm.empty() ? vireo::vmm_binary() : vmm, listen, jail);
    } catch (const vireo::Error& error) {
        std::cerr << "vireod: " << error.what() << std::endl;
        return 2;
    }
}
