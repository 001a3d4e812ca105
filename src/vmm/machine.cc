#include "vmm/machine.h"

#include <sched.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <memory>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "arch/x86/acpi_tables.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/interrupt_wiring.h"
#include "arch/x86/kernel_loader.h"
#include "arch/x86/layout.h"
#include "base/byte_size.h"
#include "base/error.h"
#include "block/image_factory.h"
#include "block/qcow2_image.h"
#include "block/snapshot_set.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/acpi_pm_timer.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/pvpanic.h"
#include "devices/legacy/serial_8250.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/block.h"
#include "devices/virtio/net.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/rng.h"
#include "kvm/vcpu.h"
#include "net/failover_watch.h"
#include "net/port_channel.h"
#include "net/port_filter.h"
#include "net/tap.h"
#include "vmm/async_teardown.h"

namespace vireo {

namespace {

// MSI routes available to devices (each MSI-X vector takes one GSI).
constexpr uint32_t kMsiGsiCount = 512;

// Where the vNIC's security policy is enforced, and what it dropped; null
// for a vNIC that has none (not on a port group).
nlohmann::json security_of(VirtioNet& nic) {
    PortFilter* filter = nic.filter();
    if (filter == nullptr) {
        return nullptr;
    }
    nlohmann::json security = {{"nftables_table", "netdev " + filter->table()}};
    try {
        security["dropped"] = filter->dropped();
    } catch (const Error& error) {
        security["dropped_error"] = error.what();
    }
    return security;
}

// The CPUs this process may run on (its affinity: a cpuset, taskset); the
// set grows past cpu_set_t's 1024 CPUs for hosts with more.
unsigned usable_cpus() {
    for (int size = 1024; size <= 1 << 16; size *= 2) {
        std::unique_ptr<cpu_set_t, decltype(&::free)> cpus(CPU_ALLOC(size), &::free);
        size_t bytes = CPU_ALLOC_SIZE(size);
        if (cpus && ::sched_getaffinity(0, bytes, cpus.get()) == 0) {
            return static_cast<unsigned>(CPU_COUNT_S(bytes, cpus.get()));
        }
        if (!cpus || errno != EINVAL) {
            break;
        }
    }
    return 1;
}

}  // namespace

Machine::Machine(const VmConfig& config)
    : config_(config),
      system_(kvm::System::open()),
      vm_(system_),
      memory_(GuestMemory::create(x86::ram_ranges(config.memory_mib * MiB))),
      msi_controller_(vm_, x86::kFirstMsiGsi, kMsiGsiCount),
      ioevents_(vm_),
      console_(config.console) {}

Machine::~Machine() {
    run_control_.stop();
    vcpus_.clear();  // joins
}

std::unique_ptr<Machine> Machine::build(const VmConfig& config) {
    // The guest's files first: a bad one is refused the same way on a host
    // without KVM as on one with it.
    x86::identify_kernel(config.boot.kernel);
    if (config.boot.initrd) {
        x86::require_readable_file(*config.boot.initrd, "initrd");
    }
    if (config.vcpus > 1 && config.vcpus > kvm::System::open().max_vcpus()) {
        fail("vcpus: {} is more than this host's KVM allows", config.vcpus);
    }
    std::unique_ptr<Machine> machine(new Machine(config));
    uint32_t slot = 0;
    for (const GuestMemory::Region& region : machine->memory_.regions()) {
        machine->vm_.map_memory(slot++, region.guest_address, region.size, region.host);
    }
    machine->vm_.create_interrupt_controllers();
    machine->vm_.set_irqchip_routes(x86::irqchip_routes());
    machine->attach_legacy_devices();
    machine->attach_pci_devices();
    machine->load_guest();
    machine->create_vcpus();
    return machine;
}

void Machine::attach_legacy_devices() {
    auto end = [this](MachineExit::Reason reason) {
        return [this, reason] { this->end(MachineExit{reason, 0, ""}); };
    };
    serial_ = std::make_shared<Serial8250>(
        std::make_shared<KvmIrqLine>(vm_, x86::kCom1Interrupt.irq),
        [this](std::span<const uint8_t> bytes) { console_.write(bytes); });
    pio_bus_.insert(x86::kCom1Port, Serial8250::kSize, serial_);

    auto i8042 = std::make_shared<I8042>(end(MachineExit::Reason::Reset));
    auto i8042_data = std::make_shared<I8042Port>(i8042, I8042Port::Kind::Data);
    auto i8042_command = std::make_shared<I8042Port>(i8042, I8042Port::Kind::Command);
    pio_bus_.insert(x86::kI8042Port, 1, i8042_data);
    pio_bus_.insert(x86::kI8042Port + 4, 1, i8042_command);
    devices_.push_back(i8042_data);
    devices_.push_back(i8042_command);

    auto rtc = std::make_shared<CmosRtc>(config_.memory_mib * MiB, config_.vcpus);
    pio_bus_.insert(x86::kRtcPort, CmosRtc::kSize, rtc);
    devices_.push_back(rtc);

    acpi_pm_ = std::make_shared<AcpiPm>(std::make_shared<KvmIrqLine>(vm_, x86::kSciInterrupt.irq),
                                        end(MachineExit::Reason::PoweredOff));
    pio_bus_.insert(x86::kAcpiPmPort, AcpiPm::kSize, acpi_pm_);

    auto pm_timer = std::make_shared<AcpiPmTimer>();
    pio_bus_.insert(x86::kAcpiPmTimerPort, AcpiPmTimer::kSize, pm_timer);
    devices_.push_back(pm_timer);

    auto debug_exit = std::make_shared<DebugExit>([this](uint32_t code) {
        this->end(MachineExit{MachineExit::Reason::GuestExit, code, ""});
    });
    pio_bus_.insert(x86::kDebugExitPort, DebugExit::kSize, debug_exit);
    devices_.push_back(debug_exit);

    auto pvpanic = std::make_shared<PvPanic>(end(MachineExit::Reason::GuestPanic));
    pio_bus_.insert(x86::kPvPanicPort, PvPanic::kSize, pvpanic);
    devices_.push_back(pvpanic);
}

void Machine::attach_pci_devices() {
    pci_root_ = std::make_shared<PciRoot>(mmio_bus_, x86::kPciMmioStart, x86::kPciMmioSize);
    pio_bus_.insert(x86::kPciConfigAddressPort, PciConfigIo::kSize,
                    std::make_shared<PciConfigIo>(pci_root_));
    mmio_bus_.insert(x86::kPciEcamStart, x86::kPciEcamSize,
                     std::make_shared<PciConfigMmio>(pci_root_));
    if (config_.devices.rng) {
        attach_virtio(std::make_unique<VirtioRng>());
    }
    WorkerPace pace = device_pace(std::chrono::microseconds(config_.devices.poll_max_us),
                                  config_.vcpus, usable_cpus());
    // One virtio-blk device per disk, in order; each serves its requests on a
    // worker thread of its own (named after it), the disk's I/O thread.
    for (size_t index = 0; index < config_.disks.size(); ++index) {
        const VmConfig::Disk& disk = config_.disks[index];
        OpenOptions options;
        options.read_only = disk.read_only;
        options.cache = disk.cache;
        std::shared_ptr<DiskImage> image = open_image(disk.path, options);
        disk_images_.push_back(image);
        std::string name = fmt::format("virtio-blk{}", index);
        auto block = std::make_unique<VirtioBlock>(
            std::move(image), disk.serial, fmt::format("{} ({})", name, disk.path),
            static_cast<uint16_t>(disk.queue_count(config_.vcpus)));
        disks_.push_back(block.get());
        disk_functions_.push_back(&attach_virtio(std::move(block), name, pace));
    }
    if (config_.port_channel_fd) {
        port_channel_ = std::make_shared<PortChannel>(UniqueFd(*config_.port_channel_fd));
    }
    // One virtio-net device per vNIC, after the disks; each on a worker
    // thread of its own that moves its frames.
    for (size_t index = 0; index < config_.nics.size(); ++index) {
        const VmConfig::Nic& nic = config_.nics[index];
        std::string name = fmt::format("virtio-net{}", index);
        // One TAP queue per queue pair; the launcher hands over the first.
        std::vector<std::unique_ptr<NetBackend>> wire;
        bool multi_queue = nic.queues > 1;
        if (nic.tap_fd) {
            wire.push_back(std::make_unique<Tap>(UniqueFd(*nic.tap_fd), nic.tap));
        }
        while (wire.size() < nic.queues) {
            wire.push_back(std::make_unique<Tap>(nic.tap, multi_queue));
        }
        // The policy goes on the TAP before the guest can send a frame (a
        // table even when it accepts everything: a later change fills it).
        std::unique_ptr<PortFilter> filter;
        if (nic.security) {
            filter = std::make_unique<PortFilter>(nic.tap, nic.mac, *nic.security);
        }
        // Under vireod the port's table is vireod's: it follows the guest's MAC.
        VirtioNet::MacFollower follow_mac;
        if (!nic.security && !nic.portgroup.empty() && port_channel_) {
            follow_mac = [channel = port_channel_, index](const MacAddress& mac) {
                channel->follow_mac(index, mac);
            };
        }
        auto device = std::make_unique<VirtioNet>(
            std::move(wire), nic.mac, fmt::format("{} ({})", name, nic.tap), std::move(filter),
            nic.vhost, std::move(follow_mac));
        nics_.push_back(device.get());
        if (!nic.team.empty()) {
            try {
                failovers_.push_back({index, std::make_unique<FailoverWatch>(nic.team)});
            } catch (const Error& error) {
                spdlog::warn("{}: no notify switches: {}", name, error.what());
            }
        }
        nic_functions_.push_back(&attach_virtio(std::move(device), name, pace));
    }
}

const VirtioPciDevice& Machine::attach_virtio(std::unique_ptr<VirtioDevice> device,
                                              std::string name, WorkerPace pace) {
    auto function = std::make_shared<VirtioPciDevice>(std::move(device), memory_, msi_controller_,
                                                      &ioevents_, std::move(name), pace);
    pci_root_->add_device(function);
    return *function;
}

void Machine::load_guest() {
    uint64_t rsdp = x86::write_acpi_tables(memory_, x86::AcpiConfig{config_.vcpus});
    x86::BootRequest request{config_.boot.kernel, config_.boot.initrd, config_.boot.cmdline};
    x86::BootInfo boot = x86::load_kernel(memory_, request, rsdp);
    boot_state_ = boot.cpu;
    boot_summary_ =
        fmt::format("{} kernel at {:#x} ({} bytes), entry {:#x}", x86::to_string(boot.format),
                    boot.kernel.address, boot.kernel.size, boot.entry);
    if (boot.initrd) {
        boot_summary_ +=
            fmt::format(", initrd at {:#x} ({} bytes)", boot.initrd->address, boot.initrd->size);
    }
    spdlog::debug("{}", boot_summary_);
}

void Machine::create_vcpus() {
    std::vector<x86::CpuidEntry> supported = kvm::supported_cpuid(system_);
    for (uint32_t index = 0; index < config_.vcpus; ++index) {
        auto vcpu = std::make_unique<kvm::Vcpu>(vm_, index);
        vcpu->set_cpuid(
            x86::vcpu_cpuid(supported, index, config_.vcpus, system_.has_tsc_deadline_timer()));
        vcpu->configure_local_apic();
        // The other vCPUs wait in KVM for the guest's INIT-SIPI-SIPI.
        if (index == 0) {
            vcpu->set_boot_state(boot_state_);
        }
        vcpus_.push_back(std::make_unique<VcpuThread>(
            std::move(vcpu),
            VcpuThread::Context{pio_bus_, mmio_bus_, memory_, run_control_,
                                [this](MachineExit exit) { end(std::move(exit)); }}));
    }
}

void Machine::start() {
    for (auto& vcpu : vcpus_) {
        vcpu->start();
    }
}

void Machine::pause() {
    run_control_.pause();
}

void Machine::resume() {
    run_control_.resume();
}

nlohmann::json Machine::snapshot_disks(const std::string& name) {
    std::vector<SnapshotDisk> disks;
    for (size_t index = 0; index < config_.disks.size(); ++index) {
        const VmConfig::Disk& disk = config_.disks[index];
        if (disk.read_only) {
            continue;  // never changes: nothing to keep
        }
        auto* qcow2 = dynamic_cast<Qcow2Image*>(disk_images_[index].get());
        if (qcow2 == nullptr) {
            fail("disks[{}] ({}) is raw, which has no snapshots: convert it to qcow2 first", index,
                 disk.path);
        }
        disks.push_back({disk.path, qcow2});
    }
    if (disks.empty()) {
        fail("no writable disk: nothing to snapshot");
    }
    if (run_control_.state() == RunControl::State::Stopping) {
        fail("the VM is stopping");
    }
    // Crash consistent across disks: with every vCPU parked the guest issues
    // no new request, and each disk's snapshot waits for its requests in
    // flight, so every snapshot holds each write the guest saw complete.
    bool was_running = run_control_.state() == RunControl::State::Running;
    auto paused_at = std::chrono::steady_clock::now();
    if (was_running) {
        pause();
    }
    SnapshotInfo first;
    try {
        first = create_snapshot_set(disks, name);
    } catch (...) {
        if (was_running) {
            resume();
        }
        throw;
    }
    if (was_running) {
        resume();
    }
    std::chrono::duration<double, std::milli> paused = std::chrono::steady_clock::now() - paused_at;
    return {{"name", name},
            {"created", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                                    fmt::gmtime(static_cast<std::time_t>(first.date_sec)))},
            {"disks", disks.size()},
            {"paused_ms", was_running ? paused.count() : 0.0}};
}

void Machine::press_power_button() {
    acpi_pm_->press_power_button();
}

void Machine::set_nic_link(size_t index, bool up) {
    if (index >= nics_.size()) {
        fail("no vNIC {}: this VM has {} (numbered from 0)", index, nics_.size());
    }
    nics_[index]->set_link(up);
}

std::vector<Machine::Watch> Machine::failover_watches() {
    std::vector<Watch> watches;
    for (const NicFailovers& failovers : failovers_) {
        FailoverWatch* watch = failovers.watch.get();
        size_t index = failovers.nic;
        watches.push_back({watch->fd(), [this, watch, index] {
                               if (watch->changed()) {
                                   nics_[index]->announce();
                                   spdlog::info("virtio-net{}: announced on {} after a failover",
                                                index, watch->active_member());
                               }
                           }});
    }
    return watches;
}

void Machine::end(MachineExit exit) {
    {
        std::lock_guard lock(exit_mutex_);
        if (exit_) {
            return;
        }
        exit_ = std::move(exit);
    }
    run_control_.stop();
    ended_.signal();
}

MachineExit Machine::finish() {
    run_control_.stop();
    for (auto& vcpu : vcpus_) {
        vcpu->join();
    }
    tear_down_vm_in_background(vm_.fd());
    std::lock_guard lock(exit_mutex_);
    return exit_.value_or(MachineExit{MachineExit::Reason::Stopped, 0, ""});
}

nlohmann::json Machine::info() const {
    nlohmann::json nics = nlohmann::json::array();
    for (size_t index = 0; index < nics_.size(); ++index) {
        nics.push_back({{"index", index},
                        {"tap", config_.nics[index].tap},
                        {"mac", format_mac(nics_[index]->mac())},
                        {"link", nics_[index]->link_up() ? "up" : "down"},
                        {"vhost", nics_[index]->uses_vhost()},
                        {"queue_pairs", nics_[index]->queue_pairs()},
                        {"queue_pairs_in_use", nics_[index]->queue_pairs_in_use()},
                        {"announcements", nics_[index]->announcements()},
                        {"vhost_signals_relayed", nics_[index]->vhost_signals_relayed()},
                        {"notifications", nic_functions_[index]->notifications()},
                        {"security", security_of(*nics_[index])}});
    }
    nlohmann::json disks = nlohmann::json::array();
    for (size_t index = 0; index < disks_.size(); ++index) {
        const VirtioBlock::Counters& counters = disks_[index]->counters();
        disks.push_back({{"index", index},
                         {"path", config_.disks[index].path},
                         {"read_ops", counters.read_ops.load()},
                         {"read_bytes", counters.read_bytes.load()},
                         {"write_ops", counters.write_ops.load()},
                         {"write_bytes", counters.write_bytes.load()},
                         {"flush_ops", counters.flush_ops.load()},
                         {"failed_ops", counters.failed_ops.load()},
                         {"notifications", disk_functions_[index]->notifications()}});
    }
    const char* state = "running";
    switch (run_control_.state()) {
        case RunControl::State::Running:
            break;
        case RunControl::State::Paused:
            state = "paused";
            break;
        case RunControl::State::Stopping:
            state = "stopping";
            break;
    }
    return {
        {"name", config_.name},
        {"state", state},
        {"vcpus", config_.vcpus},
        {"memory_mib", config_.memory_mib},
        {"memory_resident_bytes", memory_.resident_bytes()},
        {"huge_pages", memory_.huge_pages()},
        {"huge_pages_note", memory_.huge_pages_why_not()},
        {"boot", boot_summary_},
        {"pid", ::getpid()},
        {"disks", disks},
        {"nics", nics},
    };
}

}  // namespace vireo
