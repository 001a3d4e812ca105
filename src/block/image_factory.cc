#include "block/image_factory.h"

#include <array>
#include <cstring>

#include "base/error.h"
#include "block/image_file.h"
#include "block/image_lock.h"
#include "block/qcow2_format.h"
#include "block/raw_image.h"

namespace vireo {
namespace {

ImageFormat probe(const ImageFile& file) {
    std::array<uint8_t, 4> magic{};
    file.read(0, magic);
    qcow2::Be32 be;
    std::memcpy(&be, magic.data(), sizeof(be));
    return be.get() == qcow2::kMagic ? ImageFormat::qcow2 : ImageFormat::raw;
}

std::filesystem::path identity(const std::filesystem::path& path) {
    std::error_code ec;
    std::filesystem::path canonical = std::filesystem::weakly_canonical(path, ec);
    return ec ? path : canonical;
}

std::unique_ptr<DiskImage> open_chain(const std::filesystem::path& path, const OpenOptions& options,
                                      std::vector<std::filesystem::path>& chain) {
    std::filesystem::path id = identity(path);
    for (const auto& seen : chain) {
        if (seen == id) {
            std::string loop;
            for (const auto& p : chain) {
                loop += p.string() + " -> ";
            }
            fail("disk {}: backing-file loop: {}{}", chain.front().string(), loop, id.string());
        }
    }
    if (!chain.empty()) {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) {
            fail("disk {}: backing file {} does not exist", chain.back().string(), path.string());
        }
    }
    chain.push_back(id);
    ImageFile file = ImageFile::open(path, !options.read_only, options.cache);
    if (options.lock) {
        lock_image(file.fd(), path, !options.read_only);
    }
    // Not value_or: its argument, the probe, would read the file even with a format given.
    ImageFormat format = options.format ? *options.format : probe(file);
    if (format == ImageFormat::raw) {
        return std::make_unique<RawImage>(std::move(file), options.read_only);
    }
    auto open_backing = [&](const std::filesystem::path& backing,
                            std::optional<ImageFormat> backing_format) {
        OpenOptions backing_options = options;
        backing_options.read_only = true;
        backing_options.format = backing_format;
        return open_chain(backing, backing_options, chain);
    };
    return Qcow2Image::open(std::move(file), options, open_backing);
}

}  // namespace

std::string_view format_name(ImageFormat format) {
    return format == ImageFormat::raw ? "raw" : "qcow2";
}

ImageFormat parse_image_format(std::string_view name, std::string_view what) {
    if (name == "raw") {
        return ImageFormat::raw;
    }
    if (name == "qcow2") {
        return ImageFormat::qcow2;
    }
    fail("{}: unknown image format '{}' (raw or qcow2)", what, name);
}

std::string_view cache_mode_name(CacheMode mode) {
    return mode == CacheMode::writeback ? "writeback" : "none";
}

CacheMode parse_cache_mode(std::string_view name, std::string_view what) {
    if (name == "writeback") {
        return CacheMode::writeback;
    }
    if (name == "none") {
        return CacheMode::none;
    }
    fail("{}: '{}' is not a cache mode (none or writeback)", what, name);
}

std::unique_ptr<DiskImage> open_image(const std::filesystem::path& path,
                                      const OpenOptions& options) {
    std::vector<std::filesystem::path> chain;
    return open_chain(path, options, chain);
}

ImageFormat probe_format(const std::filesystem::path& path) {
    return probe(ImageFile::open(path, false));
}

void create_image(const std::filesystem::path& path, const CreateOptions& options) {
    uint64_t size = options.size;
    std::optional<ImageFormat> backing_format = options.backing_format;
    if (!options.backing_file.empty()) {
        if (options.format != ImageFormat::qcow2) {
            fail("disk {}: only qcow2 images can have a backing file", path.string());
        }
        std::filesystem::path backing = options.backing_file;
        if (backing.is_relative()) {
            backing = path.parent_path() / backing;
        }
        OpenOptions backing_options;
        backing_options.read_only = true;
        backing_options.format = backing_format;
        std::unique_ptr<DiskImage> image = open_image(backing, backing_options);
        if (!backing_format) {
            backing_format =
                dynamic_cast<Qcow2Image*>(image.get()) ? ImageFormat::qcow2 : ImageFormat::raw;
        }
        if (size == 0) {
            size = image->size();
        }
    } else if (size == 0 && options.format == ImageFormat::qcow2) {
        fail("disk {}: a size is needed (or a backing file to take it from)", path.string());
    }
    ImageFile file = ImageFile::create(path);
    try {
        lock_image(file.fd(), path, true);
        if (options.format == ImageFormat::raw) {
            file.truncate(size);
            file.sync();
        } else {
            Qcow2Image::create(file, size, options.cluster_size, options.backing_file,
                               backing_format);
        }
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove(path, ec);
        throw;
    }
}

ImageInfo image_info(const std::filesystem::path& path, OpenOptions options) {
    options.read_only = true;
    std::unique_ptr<DiskImage> image = open_image(path, options);
    ImageInfo info;
    info.path = path;
    info.virtual_size = image->size();
    if (auto* raw = dynamic_cast<RawImage*>(image.get())) {
        info.format = ImageFormat::raw;
        info.actual_size = raw->file().allocated_bytes();
        return info;
    }
    auto* qcow2 = dynamic_cast<Qcow2Image*>(image.get());
    info.format = ImageFormat::qcow2;
    info.cluster_size = qcow2->cluster_size();
    info.actual_size = qcow2->file().allocated_bytes();
    info.backing_format = qcow2->backing_format();
    info.snapshots = qcow2->snapshots();
    info.dirty = qcow2->was_dirty();
    info.corrupt = qcow2->corrupt();
    for (DiskImage* link = qcow2->backing(); link != nullptr;) {
        if (auto* q = dynamic_cast<Qcow2Image*>(link)) {
            info.backing_chain.push_back(q->file().path());
            link = q->backing();
        } else {
            info.backing_chain.push_back(dynamic_cast<RawImage*>(link)->file().path());
            link = nullptr;
        }
    }
    return info;
}

}  // namespace vireo
