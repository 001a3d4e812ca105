#include "host/state_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "base/error.h"

namespace vireo {

namespace {

void write_all(int fd, const std::string& text, const std::filesystem::path& path) {
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fail_errno("{}: write", path.string());
        }
        done += static_cast<size_t>(n);
    }
}

}  // namespace

std::filesystem::path StateFile::default_dir() {
    const char* dir = std::getenv("VIREO_STATE_DIR");
    return dir != nullptr && *dir != '\0' ? std::filesystem::path(dir)
                                          : std::filesystem::path("/var/lib/vireo");
}

StateFile::StateFile(std::filesystem::path dir, const std::string& name, int version)
    : dir_(std::move(dir)),
      file_(dir_ / (name + ".json")),
      lock_file_(dir_ / (name + ".lock")),
      version_(version) {}

StateFile::Lock::Lock(const std::filesystem::path& path, bool exclusive)
    : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (!fd_) {
        fail_errno("{}: cannot open the lock file", path.string());
    }
    while (flock(fd_.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) {
        if (errno != EINTR) {
            fail_errno("{}: flock", path.string());
        }
    }
}

StateFile::Lock StateFile::lock(bool exclusive) const {
    if (exclusive) {
        std::error_code ec;
        std::filesystem::create_directories(dir_, ec);
        if (ec) {
            fail("{}: cannot create the state directory: {}", dir_.string(), ec.message());
        }
    }
    return Lock(lock_file_, exclusive);
}

std::optional<nlohmann::json> StateFile::load() const {
    std::ifstream in(file_);
    if (!in) {
        if (std::filesystem::exists(file_)) {
            fail("{}: cannot be read", file_.string());
        }
        return std::nullopt;
    }
    nlohmann::json document;
    try {
        document = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        fail("{}: malformed ({}); fix or remove the file", file_.string(), e.what());
    }
    if (!document.is_object() || document.value("version", 0) != version_) {
        fail("{}: version {} is not one this Vireo reads ({})", file_.string(),
             document.is_object() ? document.value("version", 0) : 0, version_);
    }
    document.erase("version");
    return document;
}

void StateFile::store(nlohmann::json document) const {
    document["version"] = version_;
    std::string text = document.dump(2) + "\n";
    std::filesystem::path temp = file_;
    temp += ".tmp";
    {
        UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd) {
            fail_errno("{}: cannot create", temp.string());
        }
        write_all(fd.get(), text, temp);
        if (fsync(fd.get()) != 0) {
            fail_errno("{}: fsync", temp.string());
        }
    }
    if (::rename(temp.c_str(), file_.c_str()) != 0) {
        fail_errno("{}: rename from {}", file_.string(), temp.string());
    }
    // The rename itself reaches the disk with the folder.
    UniqueFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) {
        fsync(dir.get());
    }
}

}  // namespace vireo
