#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vireo {

// The host agent's own state in one SQLite database, `<state dir>/vireod.db`:
// which VM folders are registered and where they are in their life (being
// created, registered, being deleted), the datastores, the events of the
// host, the API's tokens and the tasks. The VM
// folders on the datastores stay the source of truth for what a VM is; this
// says which of them this host owns. Every change is one transaction, so a
// crash (kill -9 of vireod) leaves each VM either before or after it.
// Thread-safe: a transaction holds the database for its thread.
class HostDatabase {
public:
    // Where a VM is in its life; "creating" and "deleting" survive only a crash
    // in the middle of one, which the agent finishes or undoes at start.
    enum class VmStage { creating, registered, deleting };
    struct VmRecord {
        std::string name;
        std::string datastore;
        VmStage stage = VmStage::registered;
        std::string created;  // ISO 8601, UTC
    };
    struct Event {
        int64_t id = 0;
        std::string time;  // ISO 8601, UTC
        std::string vm;    // empty: about the host
        std::string kind;  // "vm.created", "vm.started", ...
        std::string message;
    };
    // An API token; the database keeps only its secret's hash (api_tokens.h).
    struct Token {
        std::string name;
        std::string role;  // "admin" or "read-only"
        std::string created;
    };

    // Opens (creating) the database; throws vireo::Error naming the file.
    explicit HostDatabase(const std::filesystem::path& file);
    ~HostDatabase();
    HostDatabase(const HostDatabase&) = delete;
    HostDatabase& operator=(const HostDatabase&) = delete;

    const std::filesystem::path& file() const { return file_; }

    // Runs `body` in one transaction: committed when it returns, rolled back
    // when it throws.
    void transaction(const std::function<void()>& body);

    std::vector<VmRecord> vms();
    std::optional<VmRecord> find_vm(std::string_view name);
    // Throws vireo::Error when the name is taken.
    void insert_vm(const VmRecord& record);
    void set_vm_stage(std::string_view name, VmStage stage);
    void delete_vm(std::string_view name);
    // Throws vireo::Error when `new_name` is taken.
    void rename_vm(std::string_view name, std::string_view new_name);

    // A datastore as registered (datastore_registry.h checks what is added).
    struct DatastoreRecord {
        std::string name;
        std::string path;  // absolute
        std::string added;
    };
    std::vector<DatastoreRecord> datastores();
    // The caller checks that neither the name nor the path is taken.
    void insert_datastore(const DatastoreRecord& record);
    // False when there was no such datastore.
    bool delete_datastore(std::string_view name);

    // Appends an event (the time is now); returns it.
    Event add_event(std::string_view vm, std::string_view kind, std::string_view message);
    // Events with an id above `after`, oldest first, at most `limit`.
    std::vector<Event> events(int64_t after, size_t limit);

    // A long operation (task_manager.h) as recorded.
    struct Task {
        int64_t id = 0;
        std::string kind;     // "vm.clone", "vm.snapshot-delete", ...
        std::string vm;       // the VM it works on
        std::string state;    // running, succeeded, failed, cancelled
        double progress = 0;  // 0 to 1
        std::string message;  // the result, or why it failed
        std::string created;
        std::string finished;  // empty while running
    };

    Task insert_task(std::string_view kind, std::string_view vm);
    void set_task_progress(int64_t id, double progress);
    void finish_task(int64_t id, std::string_view state, std::string_view message);
    // Every task (or the one with `id`), oldest first.
    std::vector<Task> tasks(std::optional<int64_t> id = std::nullopt);
    // Marks the tasks still running failed (a vireod that ended mid-task);
    // returns how many.
    size_t fail_running_tasks(std::string_view message);

    // Throws vireo::Error when the name is taken.
    void insert_token(const Token& token, std::string_view hash);
    std::optional<Token> find_token_by_hash(std::string_view hash);
    std::vector<Token> tokens();
    // False when there was no such token.
    bool delete_token(std::string_view name);

    static std::string_view stage_name(VmStage stage);

private:
    class Statement;
    void execute(const char* sql);
    [[noreturn]] void fail_sqlite(std::string_view what) const;

    std::filesystem::path file_;
    std::recursive_mutex mutex_;
    sqlite3* db_ = nullptr;
};

// The time now as ISO 8601 in UTC, to the second: "2026-12-05T07:30:00Z".
std::string utc_now();

}  // namespace vireo
