#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace vireo {

// A TAP made by a privileged launcher (vireod) for an unprivileged VMM, as
// libvirt and Firecracker's jailer do: persistent, owned by the VMM's uid and
// gid, so that the VMM attaches its queues by name (TUNSETIFF) and sets
// offloads, header size and queue state on them without CAP_NET_ADMIN, and
// the launcher deletes it once the VM is off.

// Who may attach to a TAP (TUNSETOWNER, TUNSETGROUP).
struct TapOwner {
    uid_t uid = 0;
    gid_t gid = 0;
};

// An existing interface as sysfs shows it (/sys/class/net/NAME).
struct InterfaceOwnership {
    bool tun = false;            // a TUN/TAP device (it has tun_flags)
    unsigned flags = 0;          // tun_flags: IFF_TAP, IFF_MULTI_QUEUE, IFF_PERSIST...
    std::optional<uid_t> owner;  // none: "-1", anyone may attach
    std::optional<gid_t> group;
};

// sysfs' owner or group text ("-1\n", "2000000001\n"); nullopt for -1.
// Throws vireo::Error naming `what` for text that is neither.
std::optional<uint32_t> parse_tun_id(std::string_view text, std::string_view what);

// Why the interface `name`, which exists as `found`, is not `owner`'s to
// take over (it is only when it is a persistent TAP owned by `owner`: what an
// earlier run of the same VM left); nullopt when it is.
std::optional<std::string> foreign_tap_problem(const std::string& name,
                                               const InterfaceOwnership& found, TapOwner owner);

// `name` as the kernel has it now; nullopt when no interface has that name.
// Throws vireo::Error naming the sysfs file it cannot read.
std::optional<InterfaceOwnership> read_interface_ownership(const std::string& name);

// Creates the TAP `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, and
// IFF_MULTI_QUEUE for several queues), owned by `owner`, up and persistent:
// it outlives this call until delete_persistent_tap(). Fails when an
// interface of that name exists. Throws vireo::Error naming the TAP and the
// step.
void create_persistent_tap(const std::string& name, bool multi_queue, TapOwner owner);

// Deletes the persistent TAP `name` (gone once no VMM holds a queue of it);
// false when no interface has that name. Throws vireo::Error naming it.
bool delete_persistent_tap(const std::string& name);

}  // namespace vireo
