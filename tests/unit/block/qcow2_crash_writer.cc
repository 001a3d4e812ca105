// The writer that qcow2_crash_test kills with SIGKILL: random writes and
// zeroing on an image, with flushes. Before each operation it prints what it
// is about to do ("W offset length seed", "Z offset length"); after each
// flush returns it prints "F". So every operation listed before the last "F"
// had completed before a flush completed, and must survive the crash.
//   qcow2_crash_writer IMAGE SEED L2_CACHE_BYTES

#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>

#include "base/error.h"
#include "block/image_factory.h"
#include "block_test_support.h"

namespace {

void emit(const std::string& line) {
    // One write(2) per line: nothing waits in a stdio buffer when the kill comes.
    const char* data = line.data();
    size_t left = line.size();
    while (left > 0) {
        ssize_t n = ::write(STDOUT_FILENO, data, left);
        if (n <= 0) {
            _exit(2);
        }
        data += n;
        left -= static_cast<size_t>(n);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: qcow2_crash_writer IMAGE SEED L2_CACHE_BYTES\n");
        return 2;
    }
    vireo::OpenOptions options;
    options.l2_cache_bytes = std::stoull(argv[3]);
    // The previous writer, just killed, may hold the lock for a moment
    // while the kernel tears its io_uring down.
    std::unique_ptr<vireo::DiskImage> image;
    for (int attempt = 0;; ++attempt) {
        try {
            image = vireo::open_image(argv[1], options);
            break;
        } catch (const vireo::Error& e) {
            if (attempt == 200 || std::string(e.what()).find("in use") == std::string::npos) {
                std::fprintf(stderr, "%s\n", e.what());
                return 1;
            }
            usleep(10000);
        }
    }
    std::mt19937_64 random(std::stoull(argv[2]));
    const uint64_t size = image->size();
    for (;;) {
        uint64_t op = random() % 16;
        uint64_t offset = random() % size;
        uint64_t length = std::min<uint64_t>(random() % 65536 + 1, size - offset);
        if (op == 0) {
            image->flush();
            emit("F\n");
        } else if (op == 1) {
            emit("Z " + std::to_string(offset) + " " + std::to_string(length) + "\n");
            image->write_zeroes(offset, length, random() % 2 == 0);
        } else {
            uint64_t seed = random();
            emit("W " + std::to_string(offset) + " " + std::to_string(length) + " " +
                 std::to_string(seed) + "\n");
            image->write(offset, vireo::testing::pattern(seed, offset, length));
        }
    }
}
