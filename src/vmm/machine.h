#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/event_fd.h"
#include "devices/bus.h"
#include "devices/virtio/worker_pace.h"
#include "kvm/system.h"
#include "kvm/vm.h"
#include "memory/guest_memory.h"
#include "vmm/console.h"
#include "vmm/kvm_interrupts.h"
#include "vmm/machine_exit.h"
#include "vmm/run_control.h"
#include "vmm/vcpu_thread.h"
#include "vmm/vm_config.h"

namespace vireo {

class DiskImage;
class VirtioBlock;
class VirtioNet;
class VirtioPciDevice;
class VirtioDevice;
class FailoverWatch;
class PortChannel;

class Serial8250;
class AcpiPm;
class PciRoot;

// A whole virtual machine, assembled in one place (build) from its VmConfig:
// guest RAM, the KVM VM and its interrupt controllers, the buses and devices,
// the loaded kernel with its ACPI tables, and one thread per vCPU.
class Machine {
public:
    // Throws vireo::Error for anything the configuration or the host got wrong.
    static std::unique_ptr<Machine> build(const VmConfig& config);
    ~Machine();

    void start();
    // Returns once every vCPU is parked outside KVM_RUN.
    void pause();
    void resume();
    // Asks the guest to shut down (the ACPI power button).
    void press_power_button();
    // Unplugs (or plugs back) the cable of vNIC `index`, 0-based in the
    // order of the definition. Throws vireo::Error for an index it lacks.
    void set_nic_link(size_t index, bool up);
    // Takes snapshot `name` of every writable disk (each must be qcow2), crash
    // consistent: the vCPUs are paused around it. Returns what was made and
    // how long the guest stood still. Throws vireo::Error naming the disk.
    nlohmann::json snapshot_disks(const std::string& name);
    // What the VMM's event loop watches for notify switches: after a
    // failover of a vNIC's switch team, the vNIC announces its MAC.
    struct Watch {
        int fd;
        std::function<void()> on_readable;
    };
    std::vector<Watch> failover_watches();
    // Ends the machine; the first reason given wins. Safe from any thread.
    void end(MachineExit exit);

    // Readable once the machine has ended.
    int ended_fd() const { return ended_.fd(); }
    // Stops and joins the vCPU threads; returns how the machine ended.
    MachineExit finish();

    // Host input for the serial console; see Serial8250::enqueue_input.
    Serial8250& serial() { return *serial_; }
    nlohmann::json info() const;

private:
    explicit Machine(const VmConfig& config);

    void attach_legacy_devices();
    void attach_pci_devices();
    // Puts `device` on the PCI root behind a virtio-pci transport (owned by
    // the root), its worker named `name` and waiting for work at `pace`.
    const VirtioPciDevice& attach_virtio(std::unique_ptr<VirtioDevice> device,
                                         std::string name = {}, WorkerPace pace = {});
    void load_guest();
    void create_vcpus();

    VmConfig config_;
    kvm::System system_;
    kvm::Vm vm_;
    GuestMemory memory_;
    Bus pio_bus_{"port I/O"};
    Bus mmio_bus_{"MMIO"};
    KvmMsiController msi_controller_;
    KvmIoEventRegistry ioevents_;
    ConsoleOutput console_;
    RunControl run_control_;

    std::shared_ptr<Serial8250> serial_;
    std::shared_ptr<AcpiPm> acpi_pm_;
    std::shared_ptr<PciRoot> pci_root_;
    std::vector<std::shared_ptr<BusDevice>> devices_;      // keeps the rest alive
    std::vector<const VirtioBlock*> disks_;                // owned by their PCI devices
    std::vector<const VirtioPciDevice*> disk_functions_;   // those PCI devices, owned by pci_root_
    std::vector<std::shared_ptr<DiskImage>> disk_images_;  // the disks', shared with them
    std::vector<VirtioNet*> nics_;                         // owned by their PCI devices
    std::vector<const VirtioPciDevice*> nic_functions_;    // those PCI devices, owned by pci_root_
    std::shared_ptr<PortChannel> port_channel_;  // under vireod: VmConfig::port_channel_fd
    // The vNICs that notify switches, each with its switch team's failovers.
    struct NicFailovers {
        size_t nic;
        std::unique_ptr<FailoverWatch> watch;
    };
    std::vector<NicFailovers> failovers_;

    std::vector<std::unique_ptr<VcpuThread>> vcpus_;
    x86::BootCpuState boot_state_;
    std::string boot_summary_;

    EventFd ended_;
    std::mutex exit_mutex_;
    std::optional<MachineExit> exit_;
};

}  // namespace vireo
