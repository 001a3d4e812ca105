#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"

namespace vireo {

// One JSON document of the host's state, `<state dir>/<name>.json`, that
// several commands may change at once. Changes happen under an exclusive
// flock on `<name>.lock` and rewrite the file atomically (a temporary file,
// fsynced, renamed over it, the folder fsynced), so two commands never lose
// an update and a crash never leaves half a file; reads take the lock shared.
// Every document carries a "version"; a file of another version is refused.
class StateFile {
public:
    // $VIREO_STATE_DIR if set, else /var/lib/vireo.
    static std::filesystem::path default_dir();

    StateFile(std::filesystem::path dir, const std::string& name, int version);

    const std::filesystem::path& file() const { return file_; }

    // Held while it lives; closing its fd releases the flock.
    class Lock {
    public:
        Lock(const std::filesystem::path& path, bool exclusive);

    private:
        UniqueFd fd_;
    };
    // Exclusive locking creates the state folder when needed.
    Lock lock(bool exclusive) const;

    // The document without its "version" (nullopt: no file yet). Call with the lock held.
    std::optional<nlohmann::json> load() const;
    // Call with the exclusive lock held.
    void store(nlohmann::json document) const;

private:
    std::filesystem::path dir_;
    std::filesystem::path file_;
    std::filesystem::path lock_file_;
    int version_;
};

}  // namespace vireo
