#include "cli/disk_command.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/byte_size.h"
#include "base/error.h"
#include "block/disk_image.h"
#include "block/image_copy.h"
#include "block/image_factory.h"
#include "block/image_resize.h"
#include "block/qcow2_image.h"
#include "block/raw_image.h"
#include "cli/disk_bench.h"
#include "cli/human_size.h"
#include "cli/progress.h"

namespace vireo::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Exit statuses of `disk check` (the others exit 0, or 2 for bad input).
constexpr int kClean = 0;
constexpr int kProblemsRemain = 1;

struct DiskOptions {
    std::string file;
    std::string target;
    std::string size;
    std::string format;
    std::string cluster_size;
    std::string backing;
    std::string backing_format;
    std::string snapshot;
    bool linked = false;
    bool full = false;
    bool repair = false;
    bool shrink = false;
    bool force_share = false;
    bool json = false;
    // bench
    uint64_t count = BenchOptions{}.count;
    unsigned depth = BenchOptions{}.depth;
    std::string request_size = "4K";
    std::string step;
    std::string offset = "0";
    bool write = false;
    bool random = false;
    std::string cache = "writeback";
    unsigned pattern = 0;
    uint64_t seed = 1;
};

void print(const json& value) {
    std::cout << value.dump() << std::endl;
}

uint32_t parse_cluster_size(const std::string& text) {
    uint64_t size = parse_byte_size(text, "--cluster-size");
    if (size < 512 || size > 2 * MiB || (size & (size - 1)) != 0) {
        fail("--cluster-size: {} is not a power of two from 512 bytes to 2 MiB", text);
    }
    return static_cast<uint32_t>(size);
}

// The name a new image records for its backing file. The user names the file
// from the current directory, as every other path; an absolute name is kept,
// a relative one is rewritten relative to the new image's folder (where QEMU
// and Vireo resolve it), so that the two can move together.
std::string backing_name(const std::string& backing, const fs::path& image) {
    if (!fs::exists(backing)) {
        fail("disk {}: backing file {} does not exist", image.string(), backing);
    }
    if (fs::path(backing).is_absolute()) {
        return backing;
    }
    fs::path folder = fs::absolute(image).parent_path();
    return fs::absolute(backing).lexically_normal().lexically_relative(folder).string();
}

// A new image's path: nothing there yet, in a folder that exists.
void check_new_image(const std::string& command, const fs::path& path) {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(path, ec))) {
        fail("disk {} {}: already exists (Vireo never replaces an image; remove it first)", command,
             path.string());
    }
    fs::path folder = fs::absolute(path).parent_path();
    if (!fs::is_directory(folder, ec)) {
        fail("disk {} {}: the folder {} does not exist", command, path.string(), folder.string());
    }
}

// ---- info ----

json snapshot_json(const SnapshotInfo& s) {
    return {{"id", s.id},
            {"name", s.name},
            {"date_sec", s.date_sec},
            {"date_nsec", s.date_nsec},
            {"vm_clock_ns", s.vm_clock_ns},
            {"vm_state_size", s.vm_state_size},
            {"disk_size", s.disk_size}};
}

const ImageFile& image_file(const DiskImage& image) {
    if (const auto* qcow2 = dynamic_cast<const Qcow2Image*>(&image)) {
        return qcow2->file();
    }
    return dynamic_cast<const RawImage&>(image).file();
}

std::string format_of(const DiskImage& image) {
    return dynamic_cast<const Qcow2Image*>(&image) != nullptr ? "qcow2" : "raw";
}

// The stable --json description of an image (`vireo disk info --json`).
json describe(const fs::path& path, bool force_share) {
    OpenOptions options;
    options.read_only = true;
    options.lock = !force_share;
    // Absolute, so that the backing chain's resolved paths are too.
    const fs::path absolute = fs::absolute(path).lexically_normal();
    std::unique_ptr<DiskImage> image = open_image(absolute, options);
    const auto* qcow2 = dynamic_cast<const Qcow2Image*>(image.get());
    json info = {{"path", absolute.string()},
                 {"format", format_of(*image)},
                 {"virtual_size", image->size()},
                 {"allocated_size", image_file(*image).allocated_bytes()},
                 {"cluster_size", nullptr},
                 {"backing_file", nullptr},
                 {"backing_format", nullptr},
                 {"backing_chain", json::array()},
                 {"snapshots", json::array()},
                 {"dirty", false},
                 {"corrupt", false}};
    if (qcow2 == nullptr) {
        return info;
    }
    info["cluster_size"] = qcow2->cluster_size();
    if (!qcow2->backing_file().empty()) {
        info["backing_file"] = qcow2->backing_file();
    }
    if (qcow2->backing_format()) {
        info["backing_format"] = std::string(format_name(*qcow2->backing_format()));
    }
    for (const DiskImage* link = qcow2->backing(); link != nullptr;) {
        info["backing_chain"].push_back(
            {{"path", image_file(*link).path().lexically_normal().string()},
             {"format", format_of(*link)},
             {"virtual_size", link->size()}});
        const auto* next = dynamic_cast<const Qcow2Image*>(link);
        link = next != nullptr ? next->backing() : nullptr;
    }
    for (const SnapshotInfo& s : qcow2->snapshots()) {
        info["snapshots"].push_back(snapshot_json(s));
    }
    info["dirty"] = qcow2->was_dirty();
    info["corrupt"] = qcow2->corrupt();
    return info;
}

std::string size_line(uint64_t bytes) {
    return fmt::format("{} ({} bytes)", human_size(bytes), bytes);
}

std::string date_text(uint32_t seconds) {
    return fmt::format("{:%Y-%m-%d %H:%M:%S}", fmt::localtime(static_cast<std::time_t>(seconds)));
}

void print_snapshot_table(const json& snapshots) {
    size_t name_width = 4;
    for (const json& s : snapshots) {
        name_width = std::max(name_width, s["name"].get<std::string>().size());
    }
    std::cout << fmt::format("  {:<6}{:<{}}  {:<19}  {}\n", "ID", "NAME", name_width, "DATE",
                             "DISK SIZE");
    for (const json& s : snapshots) {
        std::cout << fmt::format("  {:<6}{:<{}}  {}  {}\n", s["id"].get<std::string>(),
                                 s["name"].get<std::string>(), name_width, date_text(s["date_sec"]),
                                 human_size(s["disk_size"]));
    }
}

void print_info(const json& info) {
    std::cout << "image: " << info["path"].get<std::string>() << "\n"
              << "format: " << info["format"].get<std::string>() << "\n"
              << "virtual size: " << size_line(info["virtual_size"]) << "\n"
              << "allocated size: " << size_line(info["allocated_size"]) << "\n";
    if (info["format"] == "raw") {
        return;
    }
    std::cout << "cluster size: " << info["cluster_size"].get<uint32_t>() << "\n";
    if (!info["backing_file"].is_null()) {
        std::cout << "backing file: " << info["backing_file"].get<std::string>();
        if (!info["backing_format"].is_null()) {
            std::cout << " (format " << info["backing_format"].get<std::string>() << ")";
        }
        std::cout << "\nbacking chain:\n";
        for (const json& link : info["backing_chain"]) {
            std::cout << "  " << link["path"].get<std::string>() << " ("
                      << link["format"].get<std::string>() << ", "
                      << human_size(link["virtual_size"]) << ")\n";
        }
    }
    if (info["snapshots"].empty()) {
        std::cout << "snapshots: none\n";
    } else {
        std::cout << "snapshots:\n";
        print_snapshot_table(info["snapshots"]);
    }
    if (info["dirty"]) {
        std::cout << "not closed cleanly: its refcounts are rebuilt when next opened for "
                     "writing\n";
    }
    if (info["corrupt"]) {
        std::cout << "marked corrupt: run vireo disk check\n";
    }
}

int info(const DiskOptions& o) {
    json info = describe(o.file, o.force_share);
    if (o.json) {
        print(info);
    } else {
        print_info(info);
    }
    return 0;
}

// ---- create ----

int create(const DiskOptions& o, bool cluster_size_given) {
    check_new_image("create", o.file);
    CreateOptions options;
    options.format = parse_image_format(o.format, "--format");
    if (cluster_size_given && options.format == ImageFormat::raw) {
        fail("disk create {}: --cluster-size applies to qcow2 images only", o.file);
    }
    options.cluster_size = parse_cluster_size(o.cluster_size);
    if (!o.size.empty()) {
        options.size = parse_byte_size(o.size, "SIZE");
    }
    if (!o.backing.empty()) {
        if (options.format != ImageFormat::qcow2) {
            fail("disk create {}: only qcow2 images have a backing file", o.file);
        }
        options.backing_file = backing_name(o.backing, o.file);
        if (!o.backing_format.empty()) {
            options.backing_format = parse_image_format(o.backing_format, "--backing-format");
        }
    } else if (o.size.empty()) {
        fail("disk create {}: give a SIZE (e.g. 10G), or a --backing file to take it from", o.file);
    }
    if (options.format == ImageFormat::qcow2 && options.size % 512 != 0) {
        fail("disk create {}: a qcow2 size must be a multiple of 512 bytes ({} is not)", o.file,
             options.size);
    }
    create_image(o.file, options);
    json info = describe(o.file, false);
    if (o.json) {
        print(info);
    } else {
        std::cout << fmt::format("created {}: {}, {} virtual", info["path"].get<std::string>(),
                                 info["format"].get<std::string>(),
                                 human_size(info["virtual_size"]));
        if (!info["backing_file"].is_null()) {
            std::cout << ", backed by " << info["backing_file"].get<std::string>();
        }
        std::cout << "\n";
    }
    return 0;
}

// ---- check ----

CheckReport check_once(const fs::path& path, CheckRepair repair, std::string& format) {
    OpenOptions options;
    options.read_only = repair == CheckRepair::none;
    std::unique_ptr<DiskImage> image = open_image(path, options);
    format = format_of(*image);
    auto* qcow2 = dynamic_cast<Qcow2Image*>(image.get());
    return qcow2 != nullptr ? qcow2->check(repair) : CheckReport{};
}

int check(const DiskOptions& o) {
    std::string format;
    CheckReport found = check_once(o.file, CheckRepair::none, format);
    CheckReport remaining = found;
    if (o.repair && !found.clean()) {
        // A writable open already rebuilds the refcounts of an image not
        // closed cleanly; what it and the repair fixed shows in a fresh check.
        check_once(o.file, CheckRepair::leaks, format);
        remaining = check_once(o.file, CheckRepair::none, format);
    }
    uint64_t leaks_fixed = found.leaks - std::min(found.leaks, remaining.leaks);
    uint64_t corruptions_fixed =
        found.corruptions - std::min(found.corruptions, remaining.corruptions);
    bool clean = remaining.leaks == 0 && remaining.corruptions == 0;
    if (o.json) {
        print({{"path", fs::absolute(o.file).lexically_normal().string()},
               {"format", format},
               {"leaks", found.leaks},
               {"corruptions", found.corruptions},
               {"leaks_fixed", leaks_fixed},
               {"corruptions_fixed", corruptions_fixed},
               {"unrepairable", remaining.unrepairable},
               {"messages", found.messages},
               {"clean", clean}});
        return clean ? kClean : kProblemsRemain;
    }
    if (format == "raw") {
        std::cout << o.file << ": a raw image has no metadata to check\n";
        return kClean;
    }
    for (const std::string& message : found.messages) {
        std::cout << "  " << message << "\n";
    }
    if (found.leaks == 0 && found.corruptions == 0) {
        std::cout << o.file << ": no errors found\n";
        return kClean;
    }
    std::cout << fmt::format("{}: {} leaked cluster(s), {} corruption(s)\n", o.file, found.leaks,
                             found.corruptions);
    if (o.repair) {
        std::cout << fmt::format(
            "repaired: {} leak(s), {} corruption(s); remaining: {} leak(s), "
            "{} corruption(s)\n",
            leaks_fixed, corruptions_fixed, remaining.leaks, remaining.corruptions);
    } else if (found.corruptions == 0) {
        std::cout << "leaks waste space but harm no data; vireo disk check --repair frees them\n";
    }
    return clean ? kClean : kProblemsRemain;
}

// ---- snapshots ----

std::unique_ptr<DiskImage> open_for_snapshots(const std::string& command, const fs::path& path,
                                              bool writable) {
    OpenOptions options;
    options.read_only = !writable;
    std::unique_ptr<DiskImage> image = open_image(path, options);
    if (dynamic_cast<Qcow2Image*>(image.get()) == nullptr) {
        fail(
            "disk snapshot {} {}: a raw image has no internal snapshots (convert it to qcow2 "
            "with vireo disk convert)",
            command, path.string());
    }
    return image;
}

SnapshotInfo find_snapshot(const Qcow2Image& image, const std::string& command,
                           const std::string& id_or_name) {
    std::vector<SnapshotInfo> snapshots = image.snapshots();
    for (const auto& by : {&SnapshotInfo::id, &SnapshotInfo::name}) {
        for (const SnapshotInfo& s : snapshots) {
            if (s.*by == id_or_name) {
                return s;
            }
        }
    }
    fail(
        "disk snapshot {} {}: no snapshot with the id or name '{}' (see vireo disk snapshot "
        "list {})",
        command, image.file().path().string(), id_or_name, image.file().path().string());
}

int snapshot_create(const DiskOptions& o) {
    const std::string& name = o.snapshot;
    bool digits =
        std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (name.empty() || digits) {
        fail(
            "disk snapshot create {}: '{}': a snapshot name must not be empty nor all digits "
            "(those are ids)",
            o.file, name);
    }
    std::unique_ptr<DiskImage> image = open_for_snapshots("create", o.file, true);
    auto& qcow2 = dynamic_cast<Qcow2Image&>(*image);
    for (const SnapshotInfo& s : qcow2.snapshots()) {
        if (s.name == name) {
            fail("disk snapshot create {}: a snapshot named '{}' exists already (id {})", o.file,
                 name, s.id);
        }
    }
    SnapshotInfo created = qcow2.create_snapshot(name);
    if (o.json) {
        print({{"path", o.file}, {"snapshot", snapshot_json(created)}});
    } else {
        std::cout << fmt::format("snapshot '{}' (id {}) of {} created\n", created.name, created.id,
                                 o.file);
    }
    return 0;
}

int snapshot_list(const DiskOptions& o) {
    std::unique_ptr<DiskImage> image = open_for_snapshots("list", o.file, false);
    json snapshots = json::array();
    for (const SnapshotInfo& s : dynamic_cast<Qcow2Image&>(*image).snapshots()) {
        snapshots.push_back(snapshot_json(s));
    }
    if (o.json) {
        print({{"path", o.file}, {"snapshots", snapshots}});
    } else if (snapshots.empty()) {
        std::cout << o.file << ": no snapshots\n";
    } else {
        print_snapshot_table(snapshots);
    }
    return 0;
}

int snapshot_change(const DiskOptions& o, bool revert) {
    const char* command = revert ? "revert" : "delete";
    std::unique_ptr<DiskImage> image = open_for_snapshots(command, o.file, true);
    auto& qcow2 = dynamic_cast<Qcow2Image&>(*image);
    SnapshotInfo s = find_snapshot(qcow2, command, o.snapshot);
    if (revert) {
        qcow2.revert_to_snapshot(s.id);
    } else {
        qcow2.delete_snapshot(s.id);
    }
    if (o.json) {
        print({{"path", o.file}, {"snapshot", snapshot_json(s)}});
    } else {
        std::cout << fmt::format("{}: {} snapshot '{}' (id {})\n", o.file,
                                 revert ? "reverted to" : "deleted", s.name, s.id);
    }
    return 0;
}

// ---- clone and convert ----

json copy_result(const std::string& source, const std::string& target, const CopyResult& r,
                 ImageFormat format) {
    return {{"source", source},
            {"target", target},
            {"format", std::string(format_name(format))},
            {"virtual_size", r.virtual_size},
            {"data_bytes", r.data_bytes},
            {"zero_bytes", r.zero_bytes}};
}

CopyResult copy_with_progress(const char* label, const DiskOptions& o, ImageFormat format) {
    CopyOptions options;
    options.format = format;
    options.cluster_size = parse_cluster_size(o.cluster_size);
    std::unique_ptr<Progress> progress;
    CopyResult result = copy_image(o.file, o.target, options, [&](uint64_t done, uint64_t total) {
        if (!progress) {
            progress = std::make_unique<Progress>(label, total);
        }
        progress->update(done);
    });
    if (progress) {
        progress->finish();
    }
    return result;
}

int clone(const DiskOptions& o) {
    if (o.linked == o.full) {
        fail(
            "disk clone {}: choose --linked (a new image backed by the source) or --full (a "
            "flattened copy)",
            o.target);
    }
    check_new_image("clone", o.target);
    if (o.linked) {
        if (!o.format.empty() && o.format != "qcow2") {
            fail("disk clone {}: a linked clone is a qcow2 image (--format {})", o.target,
                 o.format);
        }
        CreateOptions options;
        options.format = ImageFormat::qcow2;
        options.cluster_size = parse_cluster_size(o.cluster_size);
        options.backing_file = backing_name(o.file, o.target);
        create_image(o.target, options);
        json info = describe(o.target, false);
        if (o.json) {
            print({{"source", o.file},
                   {"target", o.target},
                   {"mode", "linked"},
                   {"format", "qcow2"},
                   {"virtual_size", info["virtual_size"]},
                   {"backing_file", info["backing_file"]}});
        } else {
            std::cout << fmt::format(
                "linked clone {} created, backed by {} (leave {} unchanged "
                "while clones use it)\n",
                o.target, info["backing_file"].get<std::string>(), o.file);
        }
        return 0;
    }
    ImageFormat format =
        o.format.empty() ? probe_format(o.file) : parse_image_format(o.format, "--format");
    CopyResult result = copy_with_progress("clone", o, format);
    if (o.json) {
        json out = copy_result(o.file, o.target, result, format);
        out["mode"] = "full";
        print(out);
    } else {
        std::cout << fmt::format("full clone {} created: {}, {} virtual, {} of data\n", o.target,
                                 format_name(format), human_size(result.virtual_size),
                                 human_size(result.data_bytes));
    }
    return 0;
}

int convert(const DiskOptions& o) {
    check_new_image("convert", o.target);
    ImageFormat format = parse_image_format(o.format, "--format");
    CopyResult result = copy_with_progress("convert", o, format);
    if (o.json) {
        print(copy_result(o.file, o.target, result, format));
    } else {
        std::cout << fmt::format("{} converted to {} ({}): {} virtual, {} of data\n", o.file,
                                 o.target, format_name(format), human_size(result.virtual_size),
                                 human_size(result.data_bytes));
    }
    return 0;
}

// ---- resize ----

// SIZE, +SIZE (grow by) or -SIZE (shrink by).
uint64_t new_size_of(const std::string& text, uint64_t old_size, const std::string& file) {
    if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
        uint64_t delta = parse_byte_size(text.substr(1), "SIZE");
        if (text[0] == '-' && delta > old_size) {
            fail("disk resize {}: cannot shrink by {}; the disk has {} bytes", file, text,
                 old_size);
        }
        return text[0] == '+' ? old_size + delta : old_size - delta;
    }
    return parse_byte_size(text, "SIZE");
}

int resize(const DiskOptions& o) {
    uint64_t old_size = describe(o.file, false)["virtual_size"];
    uint64_t new_size = new_size_of(o.size, old_size, o.file);
    if (new_size < old_size && !o.shrink) {
        fail(
            "disk resize {}: shrinking from {} to {} is refused (use --shrink; the data past "
            "the new end is lost)",
            o.file, human_size(old_size), human_size(new_size));
    }
    resize_image(o.file, new_size, o.shrink);
    if (o.json) {
        print({{"path", o.file}, {"old_size", old_size}, {"new_size", new_size}});
    } else {
        std::cout << fmt::format("{} resized from {} to {}\n", o.file, size_line(old_size),
                                 size_line(new_size));
    }
    return 0;
}

// ---- bench ----

int bench(const DiskOptions& o) {
    BenchOptions options;
    options.file = o.file;
    if (!o.format.empty()) {
        options.format = parse_image_format(o.format, "--format");
    }
    options.count = o.count;
    options.depth = o.depth;
    options.request_size = parse_byte_size(o.request_size, "--size");
    if (!o.step.empty()) {
        options.step = parse_byte_size(o.step, "--step");
    }
    options.offset = parse_byte_size(o.offset, "--offset");
    options.write = o.write;
    options.random = o.random;
    options.cache = parse_cache_mode(o.cache, "--cache");
    if (o.pattern > 0xff) {
        fail("--pattern: {} is not a byte (0 to 255)", o.pattern);
    }
    options.pattern = static_cast<uint8_t>(o.pattern);
    options.seed = o.seed;
    const char* operation = o.write ? "write" : "read";
    uint64_t step = options.step.value_or(options.request_size);
    BenchResult result = run_bench(options, [&](const BenchResult&) {
        if (o.json) {
            return;
        }
        std::cout << fmt::format("Sending {} {} requests, {} bytes each, {} in parallel ", o.count,
                                 operation, options.request_size, o.depth);
        if (o.random) {
            std::cout << fmt::format("(random offsets from {}, seed {})\n", options.offset,
                                     options.seed);
        } else {
            std::cout << fmt::format("(starting at offset {}, step size {})\n", options.offset,
                                     step);
        }
        std::cout.flush();
    });
    if (o.json) {
        print({{"path", o.file},
               {"format", result.format},
               {"operation", operation},
               {"access", o.random ? "random" : "sequential"},
               {"pattern", options.pattern},
               {"count", result.requests},
               {"depth", o.depth},
               {"request_size", options.request_size},
               {"step", o.random ? json(nullptr) : json(step)},
               {"offset", options.offset},
               {"cache", o.cache},
               {"bytes", result.bytes},
               {"elapsed_seconds", result.elapsed_seconds},
               {"iops", result.iops()},
               {"mib_per_second", result.mib_per_second()}});
    } else {
        std::cout << fmt::format("Run completed in {:.3f} seconds.\n", result.elapsed_seconds)
                  << fmt::format("{:.1f} MiB/s, {:.0f} IOPS ({} requests, {} bytes)\n",
                                 result.mib_per_second(), result.iops(), result.requests,
                                 result.bytes);
    }
    return 0;
}

// ---- registration ----

template <typename Action>
void on_run(CLI::App* command, std::shared_ptr<DiskOptions> options, Action action) {
    command->add_flag("--json", options->json, "print the result as JSON");
    command->final_callback([options, action] { throw CLI::RuntimeError(action(*options)); });
}

void add_file(CLI::App* command, DiskOptions& o, const char* what = "the disk image") {
    command->add_option("FILE", o.file, what)->required();
}

}  // namespace

void add_disk_command(CLI::App& app) {
    CLI::App* disk = app.add_subcommand(
        "disk",
        "Disk images (raw, qcow2): create, inspect, check, snapshot, clone, convert, resize, "
        "benchmark");
    disk->require_subcommand(1);

    {
        auto o = std::make_shared<DiskOptions>();
        o->format = "qcow2";
        o->cluster_size = "64K";
        CLI::App* c = disk->add_subcommand("create", "Create a new image (never replaces a file)");
        add_file(c, *o, "the new image");
        c->add_option("SIZE", o->size, "virtual size, e.g. 10G (default: the backing file's)");
        c->add_option("-f,--format", o->format, "raw or qcow2")
            ->type_name("FORMAT")
            ->capture_default_str();
        CLI::Option* cluster =
            c->add_option("--cluster-size", o->cluster_size, "qcow2: a power of two from 512 to 2M")
                ->type_name("SIZE")
                ->capture_default_str();
        c->add_option("-b,--backing", o->backing,
                      "qcow2: backing file (a relative name is stored relative to the new "
                      "image's folder)")
            ->type_name("FILE");
        c->add_option("-F,--backing-format", o->backing_format, "raw or qcow2 (default: probed)")
            ->type_name("FORMAT");
        on_run(c, o, [cluster](const DiskOptions& options) {
            return create(options, cluster->count() > 0);
        });
    }
    {
        auto o = std::make_shared<DiskOptions>();
        CLI::App* c = disk->add_subcommand(
            "info", "Format, virtual and allocated size, backing chain, snapshots");
        add_file(c, *o);
        c->add_flag("-U,--force-share", o->force_share,
                    "read an image a running VM holds (its metadata may be stale)");
        on_run(c, o, info);
    }
    {
        auto o = std::make_shared<DiskOptions>();
        CLI::App* c = disk->add_subcommand(
            "check",
            "Check a qcow2 image's refcounts and tables. Exit status: 0 clean (or all repaired),\n"
            "1 problems remain, 2 bad input or an image that cannot be opened.");
        add_file(c, *o);
        c->add_flag("-r,--repair", o->repair, "free leaked clusters");
        on_run(c, o, check);
    }
    {
        CLI::App* snapshot =
            disk->add_subcommand("snapshot", "Internal snapshots of a qcow2 image");
        snapshot->require_subcommand(1);
        auto o = std::make_shared<DiskOptions>();
        CLI::App* c = snapshot->add_subcommand("create", "Take a snapshot of the disk as it is");
        add_file(c, *o);
        c->add_option("NAME", o->snapshot, "the snapshot's name (unique, not all digits)")
            ->required();
        on_run(c, o, snapshot_create);

        o = std::make_shared<DiskOptions>();
        c = snapshot->add_subcommand("list", "List the snapshots");
        add_file(c, *o);
        on_run(c, o, snapshot_list);

        o = std::make_shared<DiskOptions>();
        c = snapshot->add_subcommand("revert", "Make the disk what it was at a snapshot");
        add_file(c, *o);
        c->add_option("SNAPSHOT", o->snapshot, "its id or name")->required();
        on_run(c, o, [](const DiskOptions& options) { return snapshot_change(options, true); });

        o = std::make_shared<DiskOptions>();
        c = snapshot->add_subcommand("delete", "Delete a snapshot");
        add_file(c, *o);
        c->add_option("SNAPSHOT", o->snapshot, "its id or name")->required();
        on_run(c, o, [](const DiskOptions& options) { return snapshot_change(options, false); });
    }
    {
        auto o = std::make_shared<DiskOptions>();
        o->cluster_size = "64K";
        CLI::App* c = disk->add_subcommand(
            "clone",
            "Clone an image: --linked (a qcow2 backed by the source, instant) or --full (a\n"
            "flattened, thin copy). Shows progress on a terminal.");
        add_file(c, *o, "the source image");
        c->add_option("TARGET", o->target, "the new image")->required();
        c->add_flag("--linked", o->linked, "a new qcow2 image whose backing file is the source");
        c->add_flag("--full", o->full, "a copy of what the source reads as, through its chain");
        c->add_option("-f,--format", o->format, "--full: raw or qcow2 (default: the source's)")
            ->type_name("FORMAT");
        c->add_option("--cluster-size", o->cluster_size, "qcow2 target: cluster size")
            ->type_name("SIZE")
            ->capture_default_str();
        on_run(c, o, clone);
    }
    {
        auto o = std::make_shared<DiskOptions>();
        o->cluster_size = "64K";
        CLI::App* c = disk->add_subcommand(
            "convert",
            "Copy an image into a new one of another format (raw <-> qcow2), flattening its\n"
            "backing chain and leaving zeroes unallocated. Shows progress on a terminal.");
        add_file(c, *o, "the source image");
        c->add_option("TARGET", o->target, "the new image")->required();
        c->add_option("-f,--format", o->format, "the target's format: raw or qcow2")
            ->type_name("FORMAT")
            ->required();
        c->add_option("--cluster-size", o->cluster_size, "qcow2 target: cluster size")
            ->type_name("SIZE")
            ->capture_default_str();
        on_run(c, o, convert);
    }
    {
        auto o = std::make_shared<DiskOptions>();
        CLI::App* c = disk->add_subcommand("resize", "Change a disk's virtual size");
        add_file(c, *o);
        c->add_option("SIZE", o->size, "the new size (10G), or a change (+1G, -512M)")->required();
        c->add_flag("--shrink", o->shrink, "allow shrinking (what lies past the new end is lost)");
        on_run(c, o, resize);
    }
    {
        auto o = std::make_shared<DiskOptions>();
        CLI::App* c = disk->add_subcommand(
            "bench",
            "I/O benchmark, with qemu-img bench's options: COUNT requests of SIZE bytes, DEPTH\n"
            "in flight; sequential from OFFSET by STEP, or --random. Prints the elapsed time,\n"
            "MiB/s and IOPS.");
        add_file(c, *o);
        c->add_option("-c,--count", o->count, "number of requests")
            ->type_name("N")
            ->capture_default_str();
        c->add_option("-d,--depth", o->depth, "requests in flight at once (1 to 1024)")
            ->type_name("N")
            ->capture_default_str();
        c->add_option("-s,--size", o->request_size, "bytes per request")
            ->type_name("SIZE")
            ->capture_default_str();
        c->add_flag("-w,--write", o->write, "write (the pattern byte) instead of read");
        c->add_option("-S,--step", o->step, "bytes from one request to the next (default: SIZE)")
            ->type_name("SIZE");
        c->add_flag("--random", o->random, "random offsets, aligned to SIZE, instead of a step");
        c->add_option("-o,--offset", o->offset, "the first request's offset")
            ->type_name("SIZE")
            ->capture_default_str();
        c->add_option("-t,--cache", o->cache, "writeback (host page cache) or none (O_DIRECT)")
            ->type_name("MODE")
            ->capture_default_str();
        c->add_option("--pattern", o->pattern, "the byte written by a write test (0 to 255)")
            ->type_name("BYTE")
            ->capture_default_str();
        c->add_option("-f,--format", o->format, "raw or qcow2 (default: probed)")
            ->type_name("FORMAT");
        c->add_option("--seed", o->seed, "--random: the generator's seed")
            ->type_name("N")
            ->capture_default_str();
        on_run(c, o, bench);
    }
}

}  // namespace vireo::cli
