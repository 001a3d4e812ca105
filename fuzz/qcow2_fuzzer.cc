// Fuzzes qcow2 header and table parsing: the input is an image file (or, when
// its first byte is odd, a list of byte patches to a small valid image with
// data, zero clusters and a snapshot, so the
// fuzzer starts deep in the tables). The image is opened read-only, a few
// ranges are read, the snapshots listed and the tables checked; each must
// succeed or throw vireo::Error.

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "base/error.h"
#include "block/image_factory.h"
#include "block/qcow2_image.h"

namespace {

std::filesystem::path g_dir;
std::vector<uint8_t> g_template;

std::vector<uint8_t> slurp(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void make_template() {
    auto path = g_dir / "template.qcow2";
    vireo::CreateOptions options;
    options.size = 256 * 1024;
    options.cluster_size = 512;
    vireo::create_image(path, options);
    {
        auto image = vireo::open_image(path);
        std::vector<uint8_t> data(3000, 0xa5);
        image->write(1000, data);
        image->write_zeroes(8192, 4096, false);
        dynamic_cast<vireo::Qcow2Image&>(*image).create_snapshot("s");
        image->write(1500, data);
    }
    g_template = slurp(path);
    std::filesystem::remove(path);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    char pattern[] = "/tmp/vireo-qcow2-fuzz-XXXXXX";
    g_dir = mkdtemp(pattern);
    // libFuzzer ends with exit() when its time is up: the folder goes then.
    std::atexit([] { std::filesystem::remove_all(g_dir); });
    make_template();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> file;
    if (size > 0 && (data[0] & 1)) {
        file = g_template;
        for (size_t i = 1; i + 3 <= size; i += 3) {
            size_t at = ((size_t{data[i]} << 8) | data[i + 1]) % file.size();
            file[at] = data[i + 2];
        }
    } else if (size > 0) {
        file.assign(data, data + size);
    }
    auto path = g_dir / "input.qcow2";
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        if (!file.empty()) {
            out.write(reinterpret_cast<const char*>(file.data()),
                      static_cast<std::streamsize>(file.size()));
        }
    }
    vireo::OpenOptions options;
    options.read_only = true;
    options.lock = false;
    options.format = vireo::ImageFormat::qcow2;
    options.l2_cache_bytes = 4096;
    try {
        auto image = vireo::open_image(path, options);
        std::vector<uint8_t> buffer(65536);
        uint64_t disk = image->size();
        for (uint64_t offset : {uint64_t{0}, disk / 3, disk > 65536 ? disk - 65536 : 0}) {
            uint64_t length = std::min<uint64_t>(buffer.size(), disk - std::min(offset, disk));
            image->read(offset, {buffer.data(), length});
        }
        if (auto* qcow2 = dynamic_cast<vireo::Qcow2Image*>(image.get())) {
            qcow2->snapshots();
            qcow2->check();
        }
    } catch (const vireo::Error&) {
        // Refused, with a message: what a hostile image must get.
    }
    return 0;
}
