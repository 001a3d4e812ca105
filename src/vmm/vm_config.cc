#include "vmm/vm_config.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/json_object_reader.h"
#include "net/interface_name.h"
#include "net/network_config.h"

namespace vireo {

namespace {

using nlohmann::json;

VmConfig::ConsoleOutput parse_console_output(ObjectReader& reader) {
    auto output = reader.string("output");
    if (!output || *output == "stdio") {
        return VmConfig::ConsoleOutput::Stdio;
    }
    if (*output == "file") {
        return VmConfig::ConsoleOutput::File;
    }
    if (*output == "none") {
        return VmConfig::ConsoleOutput::None;
    }
    reader.error("output", "'{}' is not one of stdio, file, none", *output);
}

VmConfig::Disk parse_disk(const json& value, size_t index, const std::string& source) {
    ObjectReader reader(value, fmt::format("disks[{}]", index), source);
    VmConfig::Disk disk;
    disk.path = reader.required_string("path", "a disk image file or block device");
    std::error_code error;
    auto status = std::filesystem::status(disk.path, error);
    if (!std::filesystem::exists(status)) {
        reader.error("path", "{}: no such file", disk.path);
    }
    if (!std::filesystem::is_regular_file(status) && !std::filesystem::is_block_file(status)) {
        reader.error("path", "{}: not a regular file or block device", disk.path);
    }
    disk.read_only = reader.boolean("readonly").value_or(false);
    disk.serial = reader.string("serial").value_or("");
    if (disk.serial.size() > VmConfig::kMaxDiskSerial) {
        reader.error("serial", "'{}' is {} bytes long (at most {})", disk.serial,
                     disk.serial.size(), VmConfig::kMaxDiskSerial);
    }
    for (char c : disk.serial) {
        if (c < 0x20 || c > 0x7e) {
            reader.error("serial", "'{}' holds a character that is not printable ASCII",
                         disk.serial);
        }
    }
    if (auto cache = reader.string("cache")) {
        if (*cache == "none") {
            disk.cache = CacheMode::none;
        } else if (*cache != "writeback") {
            reader.error("cache", "'{}' is not one of writeback, none", *cache);
        }
    }
    disk.queues = static_cast<unsigned>(
        reader.unsigned_integer("queues", 1, VmConfig::kMaxDiskQueues).value_or(0));
    reader.refuse_unknown_fields();
    return disk;
}

std::vector<VmConfig::Disk> parse_disks(const json& value, const std::string& source) {
    if (!value.is_array()) {
        fail("{}: disks: must be a list of disks, not {}", source, value.type_name());
    }
    if (value.size() > VmConfig::kMaxDisks) {
        fail("{}: disks: {} disks, at most {}", source, value.size(), VmConfig::kMaxDisks);
    }
    std::vector<VmConfig::Disk> disks;
    for (size_t i = 0; i < value.size(); ++i) {
        disks.push_back(parse_disk(value[i], i, source));
        // The same image twice would be two writers of one file.
        for (size_t j = 0; j < i; ++j) {
            std::error_code error;
            if (std::filesystem::equivalent(disks[j].path, disks[i].path, error)) {
                fail("{}: disks[{}].path: {} is already disks[{}]", source, i, disks[i].path, j);
            }
        }
    }
    return disks;
}

VmConfig::Nic parse_nic(const json& value, size_t index, const std::string& source) {
    ObjectReader reader(value, fmt::format("nics[{}]", index), source);
    VmConfig::Nic nic;
    nic.tap = reader.string("tap").value_or("");
    if (auto problem = interface_name_problem(nic.tap)) {
        reader.error("tap", "{}", *problem);
    }
    if (auto text = reader.string("mac")) {
        auto mac = parse_mac(*text);
        if (!mac) {
            reader.error("mac", "'{}' is not a MAC address (six hex bytes, as 02:76:69:0a:1b:2c)",
                         *text);
        }
        if (is_multicast(*mac)) {
            reader.error("mac", "{} is a multicast address; a vNIC needs a unicast one", *text);
        }
        nic.mac = *mac;
    } else {
        nic.mac = random_vnic_mac();  // to_json() keeps it with the definition
    }
    nic.portgroup = reader.string("portgroup").value_or("");
    if (auto problem =
            nic.portgroup.empty() ? std::nullopt : portgroup_name_problem(nic.portgroup)) {
        reader.error("portgroup", "{}", *problem);
    }
    nic.vhost = reader.boolean("vhost").value_or(true);
    nic.team = reader.string("team").value_or("");
    if (auto problem = nic.team.empty() ? std::nullopt : interface_name_problem(nic.team)) {
        reader.error("team", "{}", *problem);
    }
    nic.queues = static_cast<unsigned>(
        reader.unsigned_integer("queues", 1, VmConfig::kMaxNicQueues).value_or(1));
    if (auto fd = reader.unsigned_integer("tap_fd", 3, INT32_MAX)) {
        nic.tap_fd = static_cast<int>(*fd);
    }
    if (const json* security = reader.find("security")) {
        nic.security = SecurityOverride::from_json(*security, reader.field("security"), source)
                           .applied_to(SecurityPolicy{});
    }
    reader.refuse_unknown_fields();
    return nic;
}

std::vector<VmConfig::Nic> parse_nics(const json& value, const std::string& source) {
    if (!value.is_array()) {
        fail("{}: nics: must be a list of vNICs, not {}", source, value.type_name());
    }
    if (value.size() > VmConfig::kMaxNics) {
        fail("{}: nics: {} vNICs, at most {}", source, value.size(), VmConfig::kMaxNics);
    }
    std::vector<VmConfig::Nic> nics;
    for (size_t i = 0; i < value.size(); ++i) {
        nics.push_back(parse_nic(value[i], i, source));
        for (size_t j = 0; j < i; ++j) {
            if (nics[j].tap == nics[i].tap) {
                fail("{}: nics[{}].tap: {} is already nics[{}]'s", source, i, nics[i].tap, j);
            }
            if (nics[j].mac == nics[i].mac) {
                fail("{}: nics[{}].mac: {} is already nics[{}]'s", source, i,
                     format_mac(nics[i].mac), j);
            }
        }
    }
    return nics;
}

const char* console_output_name(VmConfig::ConsoleOutput output) {
    switch (output) {
        case VmConfig::ConsoleOutput::Stdio:
            return "stdio";
        case VmConfig::ConsoleOutput::File:
            return "file";
        case VmConfig::ConsoleOutput::None:
            return "none";
    }
    return "none";
}

}  // namespace

VmConfig VmConfig::from_json(const json& document, const std::string& source) {
    VmConfig config;
    ObjectReader root(document, "", source);
    if (auto name = root.string("name")) {
        if (name->empty() || name->size() > 64 ||
            name->find_first_not_of(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
                std::string::npos) {
            root.error("name", "'{}' must be 1 to 64 letters, digits, '-', '_' or '.'", *name);
        }
        config.name = *name;
    }
    config.vcpus = static_cast<uint32_t>(root.unsigned_integer("vcpus", 1, kMaxVcpus).value_or(1));
    config.memory_mib =
        root.unsigned_integer("memory_mib", kMinMemoryMib, kMaxMemoryMib).value_or(256);

    const json* boot = root.find("boot");
    if (boot == nullptr) {
        root.error("boot", "missing (needs at least boot.kernel, a bzImage or PVH ELF file)");
    }
    ObjectReader boot_reader(*boot, "boot", source);
    config.boot.kernel =
        boot_reader.required_string("kernel", "a path to a bzImage or PVH ELF file");
    config.boot.initrd = boot_reader.string("initrd");
    config.boot.cmdline = boot_reader.string("cmdline").value_or("");
    boot_reader.refuse_unknown_fields();

    if (const json* console = root.find("console")) {
        ObjectReader console_reader(*console, "console", source);
        config.console.output = parse_console_output(console_reader);
        config.console.path = console_reader.string("path").value_or("");
        if (config.console.output == ConsoleOutput::File && config.console.path.empty()) {
            console_reader.error("path", "missing (output 'file' needs a path)");
        }
        config.console.input = console_reader.boolean("input").value_or(true);
        console_reader.refuse_unknown_fields();
    }

    if (auto socket = root.string("control_socket")) {
        config.control_socket = *socket;
    }

    if (const json* devices = root.find("devices")) {
        ObjectReader devices_reader(*devices, "devices", source);
        config.devices.rng = devices_reader.boolean("rng").value_or(true);
        config.devices.poll_max_us =
            static_cast<uint32_t>(devices_reader.unsigned_integer("poll_max_us", 0, kMaxPollMaxUs)
                                      .value_or(config.devices.poll_max_us));
        devices_reader.refuse_unknown_fields();
    }
    if (const json* disks = root.find("disks")) {
        config.disks = parse_disks(*disks, source);
    }
    if (const json* nics = root.find("nics")) {
        config.nics = parse_nics(*nics, source);
    }
    if (auto fd = root.unsigned_integer("port_channel_fd", 3, INT32_MAX)) {
        config.port_channel_fd = static_cast<int>(*fd);
    }
    root.refuse_unknown_fields();
    return config;
}

VmConfig VmConfig::from_json_text(const std::string& text, const std::string& source) {
    json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) {
        // Parse again with exceptions for the position of the syntax error.
        try {
            document = json::parse(text);
        } catch (const json::parse_error& error) {
            fail("{}: not valid JSON: {}", source, error.what());
        }
    }
    return from_json(document, source);
}

VmConfig VmConfig::from_file(const std::string& path) {
    std::ifstream file(path);
    if (!file) {
        fail_errno("{}: cannot read the VM definition", path);
    }
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded() || !document.is_object()) {
        return from_json_text(text, path);  // reports the syntax error
    }
    return from_json(in_folder(std::move(document), std::filesystem::absolute(path).parent_path()),
                     path);
}

json VmConfig::in_folder(json document, const std::filesystem::path& folder) {
    auto anchor = [&folder](json& value) {
        if (value.is_string() && !value.get<std::string>().empty()) {
            std::filesystem::path path(value.get<std::string>());
            value = (path.is_relative() ? folder / path : path).lexically_normal().string();
        }
    };
    if (document.contains("boot") && document["boot"].is_object()) {
        for (const char* key : {"kernel", "initrd"}) {
            if (document["boot"].contains(key)) {
                anchor(document["boot"][key]);
            }
        }
    }
    if (document.contains("console") && document["console"].is_object() &&
        document["console"].contains("path")) {
        anchor(document["console"]["path"]);
    }
    if (document.contains("control_socket")) {
        anchor(document["control_socket"]);
    }
    if (document.contains("disks") && document["disks"].is_array()) {
        for (json& disk : document["disks"]) {
            if (disk.is_object() && disk.contains("path")) {
                anchor(disk["path"]);
            }
        }
    }
    return document;
}

json VmConfig::to_json() const {
    json document = {
        {"name", name},
        {"vcpus", vcpus},
        {"memory_mib", memory_mib},
        {"boot", {{"kernel", boot.kernel}, {"cmdline", boot.cmdline}}},
        {"console", {{"output", console_output_name(console.output)}, {"input", console.input}}},
        {"devices", {{"rng", devices.rng}, {"poll_max_us", devices.poll_max_us}}},
    };
    if (boot.initrd) {
        document["boot"]["initrd"] = *boot.initrd;
    }
    if (!console.path.empty()) {
        document["console"]["path"] = console.path;
    }
    if (control_socket) {
        document["control_socket"] = *control_socket;
    }
    if (!disks.empty()) {
        json list = json::array();
        for (const Disk& disk : disks) {
            json entry = {{"path", disk.path},
                          {"readonly", disk.read_only},
                          {"cache", disk.cache == CacheMode::none ? "none" : "writeback"}};
            if (disk.queues != 0) {
                entry["queues"] = disk.queues;
            }
            if (!disk.serial.empty()) {
                entry["serial"] = disk.serial;
            }
            list.push_back(entry);
        }
        document["disks"] = list;
    }
    if (!nics.empty()) {
        json list = json::array();
        for (const Nic& nic : nics) {
            json entry = {{"tap", nic.tap}, {"mac", format_mac(nic.mac)}};
            if (!nic.portgroup.empty()) {
                entry["portgroup"] = nic.portgroup;
            }
            if (!nic.vhost) {
                entry["vhost"] = false;
            }
            if (!nic.team.empty()) {
                entry["team"] = nic.team;
            }
            if (nic.queues != 1) {
                entry["queues"] = nic.queues;
            }
            if (nic.tap_fd) {
                entry["tap_fd"] = *nic.tap_fd;
            }
            if (nic.security) {
                entry["security"] = SecurityOverride::every_field_of(*nic.security).to_json();
            }
            list.push_back(entry);
        }
        document["nics"] = list;
    }
    if (port_channel_fd) {
        document["port_channel_fd"] = *port_channel_fd;
    }
    return document;
}

}  // namespace vireo
