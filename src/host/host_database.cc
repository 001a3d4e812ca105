#include "host/host_database.h"

#include <ctime>
#include <iterator>

#include "base/error.h"

namespace vireo {

// One prepared statement, finalized when it goes.
class HostDatabase::Statement {
public:
    Statement(HostDatabase& database, const char* sql) : database_(database) {
        if (sqlite3_prepare_v2(database_.db_, sql, -1, &statement_, nullptr) != SQLITE_OK) {
            database_.fail_sqlite(sql);
        }
    }
    ~Statement() { sqlite3_finalize(statement_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, std::string_view text) {
        check(sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()),
                                SQLITE_TRANSIENT));
        return *this;
    }
    Statement& bind(int index, int64_t number) {
        check(sqlite3_bind_int64(statement_, index, number));
        return *this;
    }
    Statement& bind_real(int index, double number) {
        check(sqlite3_bind_double(statement_, index, number));
        return *this;
    }
    // True while there is a row to read; false when done.
    bool step() {
        int rc = sqlite3_step(statement_);
        if (rc == SQLITE_ROW) {
            return true;
        }
        if (rc != SQLITE_DONE) {
            database_.fail_sqlite(sqlite3_sql(statement_));
        }
        return false;
    }
    std::string text(int column) const {
        const unsigned char* value = sqlite3_column_text(statement_, column);
        return value ? reinterpret_cast<const char*>(value) : "";
    }
    int64_t number(int column) const { return sqlite3_column_int64(statement_, column); }
    double real(int column) const { return sqlite3_column_double(statement_, column); }

private:
    void check(int rc) {
        if (rc != SQLITE_OK) {
            database_.fail_sqlite(sqlite3_sql(statement_));
        }
    }

    HostDatabase& database_;
    sqlite3_stmt* statement_ = nullptr;
};

namespace {

// The schema, one step per version: a database at version N gets the steps
// after N, each in a transaction, so that an older host's state is kept.
// 1: the VM registry and the event log. 2: the API's tokens. 3: tasks.
// 4: datastores (before, a file of their own: datastore_registry.h).
constexpr const char* kSchemaSteps[] = {
    R"sql(
CREATE TABLE vms (
    name      TEXT PRIMARY KEY,
    datastore TEXT NOT NULL,
    stage     TEXT NOT NULL CHECK (stage IN ('creating', 'registered', 'deleting')),
    created   TEXT NOT NULL
);
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    time    TEXT NOT NULL,
    vm      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
);
PRAGMA user_version = 1;
)sql",
    R"sql(
CREATE TABLE tokens (
    name    TEXT PRIMARY KEY,
    role    TEXT NOT NULL CHECK (role IN ('admin', 'read-only')),
    hash    TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
PRAGMA user_version = 2;
)sql",
    R"sql(
CREATE TABLE tasks (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    vm       TEXT NOT NULL,
    state    TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    progress REAL NOT NULL,
    message  TEXT NOT NULL,
    created  TEXT NOT NULL,
    finished TEXT NOT NULL
);
PRAGMA user_version = 3;
)sql",
    R"sql(
CREATE TABLE datastores (
    name  TEXT PRIMARY KEY,
    path  TEXT NOT NULL UNIQUE,
    added TEXT NOT NULL
);
PRAGMA user_version = 4;
)sql"};
constexpr int kSchemaVersion = std::size(kSchemaSteps);

HostDatabase::VmStage parse_stage(const std::string& text) {
    if (text == "creating") {
        return HostDatabase::VmStage::creating;
    }
    if (text == "deleting") {
        return HostDatabase::VmStage::deleting;
    }
    return HostDatabase::VmStage::registered;
}

}  // namespace

std::string utc_now() {
    std::time_t now = std::time(nullptr);
    std::tm parts{};
    gmtime_r(&now, &parts);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &parts);
    return text;
}

HostDatabase::HostDatabase(const std::filesystem::path& file) : file_(file) {
    std::error_code error;
    std::filesystem::create_directories(file_.parent_path(), error);
    if (sqlite3_open_v2(file_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
        std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        fail("host database {}: cannot open: {}", file_.string(), message);
    }
    try {
        // WAL: readers never wait for the writer; FULL: a committed
        // transaction survives a power cut, not only a crash of vireod.
        execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;");
        sqlite3_busy_timeout(db_, 5000);
        Statement version(*this, "PRAGMA user_version");
        version.step();
        int64_t found = version.number(0);
        if (found > kSchemaVersion) {
            fail("host database {}: schema version {} is newer than this vireod's ({})",
                 file_.string(), found, kSchemaVersion);
        }
        for (int64_t step = found; step < kSchemaVersion; ++step) {
            transaction([&] { execute(kSchemaSteps[step]); });
        }
    } catch (...) {
        sqlite3_close(db_);
        throw;
    }
}

HostDatabase::~HostDatabase() {
    sqlite3_close(db_);
}

void HostDatabase::execute(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
        std::string text = message ? message : "unknown error";
        sqlite3_free(message);
        fail("host database {}: {}", file_.string(), text);
    }
}

void HostDatabase::fail_sqlite(std::string_view what) const {
    fail("host database {}: {}: {}", file_.string(), sqlite3_errmsg(db_), what);
}

void HostDatabase::transaction(const std::function<void()>& body) {
    std::lock_guard lock(mutex_);
    execute("BEGIN IMMEDIATE");
    try {
        body();
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
    execute("COMMIT");
}

std::string_view HostDatabase::stage_name(VmStage stage) {
    switch (stage) {
        case VmStage::creating:
            return "creating";
        case VmStage::deleting:
            return "deleting";
        case VmStage::registered:
            break;
    }
    return "registered";
}

std::vector<HostDatabase::VmRecord> HostDatabase::vms() {
    std::lock_guard lock(mutex_);
    Statement query(*this, "SELECT name, datastore, stage, created FROM vms ORDER BY name");
    std::vector<VmRecord> records;
    while (query.step()) {
        records.push_back(
            {query.text(0), query.text(1), parse_stage(query.text(2)), query.text(3)});
    }
    return records;
}

std::optional<HostDatabase::VmRecord> HostDatabase::find_vm(std::string_view name) {
    std::lock_guard lock(mutex_);
    Statement query(*this, "SELECT name, datastore, stage, created FROM vms WHERE name = ?1");
    query.bind(1, name);
    if (!query.step()) {
        return std::nullopt;
    }
    return VmRecord{query.text(0), query.text(1), parse_stage(query.text(2)), query.text(3)};
}

void HostDatabase::insert_vm(const VmRecord& record) {
    std::lock_guard lock(mutex_);
    if (find_vm(record.name)) {
        fail("VM '{}' is already registered on this host", record.name);
    }
    Statement insert(*this,
                     "INSERT INTO vms (name, datastore, stage, created) VALUES (?1, ?2, ?3, ?4)");
    insert.bind(1, record.name)
        .bind(2, record.datastore)
        .bind(3, stage_name(record.stage))
        .bind(4, record.created);
    insert.step();
}

void HostDatabase::set_vm_stage(std::string_view name, VmStage stage) {
    std::lock_guard lock(mutex_);
    Statement update(*this, "UPDATE vms SET stage = ?2 WHERE name = ?1");
    update.bind(1, name).bind(2, stage_name(stage));
    update.step();
}

void HostDatabase::delete_vm(std::string_view name) {
    std::lock_guard lock(mutex_);
    Statement remove(*this, "DELETE FROM vms WHERE name = ?1");
    remove.bind(1, name);
    remove.step();
}

void HostDatabase::rename_vm(std::string_view name, std::string_view new_name) {
    std::lock_guard lock(mutex_);
    if (find_vm(new_name)) {
        fail("VM '{}' is already registered on this host", new_name);
    }
    Statement update(*this, "UPDATE vms SET name = ?2 WHERE name = ?1");
    update.bind(1, name).bind(2, new_name);
    update.step();
}

HostDatabase::Event HostDatabase::add_event(std::string_view vm, std::string_view kind,
                                            std::string_view message) {
    std::lock_guard lock(mutex_);
    Event event{0, utc_now(), std::string(vm), std::string(kind), std::string(message)};
    Statement insert(*this, "INSERT INTO events (time, vm, kind, message) VALUES (?1, ?2, ?3, ?4)");
    insert.bind(1, event.time).bind(2, event.vm).bind(3, event.kind).bind(4, event.message);
    insert.step();
    event.id = sqlite3_last_insert_rowid(db_);
    return event;
}

std::vector<HostDatabase::Event> HostDatabase::events(int64_t after, size_t limit) {
    std::lock_guard lock(mutex_);
    Statement query(*this,
                    "SELECT id, time, vm, kind, message FROM events WHERE id > ?1 ORDER BY id "
                    "LIMIT ?2");
    query.bind(1, after).bind(2, static_cast<int64_t>(limit));
    std::vector<Event> events;
    while (query.step()) {
        events.push_back(
            {query.number(0), query.text(1), query.text(2), query.text(3), query.text(4)});
    }
    return events;
}

void HostDatabase::insert_token(const Token& token, std::string_view hash) {
    std::lock_guard lock(mutex_);
    Statement find(*this, "SELECT 1 FROM tokens WHERE name = ?1");
    find.bind(1, token.name);
    if (find.step()) {
        fail("a token named '{}' exists already", token.name);
    }
    Statement insert(*this,
                     "INSERT INTO tokens (name, role, hash, created) VALUES (?1, ?2, ?3, ?4)");
    insert.bind(1, token.name).bind(2, token.role).bind(3, hash).bind(4, token.created);
    insert.step();
}

std::optional<HostDatabase::Token> HostDatabase::find_token_by_hash(std::string_view hash) {
    std::lock_guard lock(mutex_);
    Statement query(*this, "SELECT name, role, created FROM tokens WHERE hash = ?1");
    query.bind(1, hash);
    if (!query.step()) {
        return std::nullopt;
    }
    return Token{query.text(0), query.text(1), query.text(2)};
}

std::vector<HostDatabase::Token> HostDatabase::tokens() {
    std::lock_guard lock(mutex_);
    Statement query(*this, "SELECT name, role, created FROM tokens ORDER BY name");
    std::vector<Token> tokens;
    while (query.step()) {
        tokens.push_back({query.text(0), query.text(1), query.text(2)});
    }
    return tokens;
}

bool HostDatabase::delete_token(std::string_view name) {
    std::lock_guard lock(mutex_);
    Statement remove(*this, "DELETE FROM tokens WHERE name = ?1");
    remove.bind(1, name);
    remove.step();
    return sqlite3_changes(db_) > 0;
}

std::vector<HostDatabase::DatastoreRecord> HostDatabase::datastores() {
    std::lock_guard lock(mutex_);
    Statement query(*this, "SELECT name, path, added FROM datastores ORDER BY name");
    std::vector<DatastoreRecord> datastores;
    while (query.step()) {
        datastores.push_back({query.text(0), query.text(1), query.text(2)});
    }
    return datastores;
}

void HostDatabase::insert_datastore(const DatastoreRecord& record) {
    std::lock_guard lock(mutex_);
    Statement insert(*this, "INSERT INTO datastores (name, path, added) VALUES (?1, ?2, ?3)");
    insert.bind(1, record.name).bind(2, record.path).bind(3, record.added);
    insert.step();
}

bool HostDatabase::delete_datastore(std::string_view name) {
    std::lock_guard lock(mutex_);
    Statement remove(*this, "DELETE FROM datastores WHERE name = ?1");
    remove.bind(1, name);
    remove.step();
    return sqlite3_changes(db_) > 0;
}

HostDatabase::Task HostDatabase::insert_task(std::string_view kind, std::string_view vm) {
    std::lock_guard lock(mutex_);
    Task task{0, std::string(kind), std::string(vm), "running", 0, "", utc_now(), ""};
    Statement insert(*this,
                     "INSERT INTO tasks (kind, vm, state, progress, message, created, finished) "
                     "VALUES (?1, ?2, 'running', 0, '', ?3, '')");
    insert.bind(1, kind).bind(2, vm).bind(3, task.created);
    insert.step();
    task.id = sqlite3_last_insert_rowid(db_);
    return task;
}

void HostDatabase::finish_task(int64_t id, std::string_view state, std::string_view message) {
    std::lock_guard lock(mutex_);
    Statement update(*this,
                     "UPDATE tasks SET state = ?2, message = ?3, finished = ?4, progress = CASE "
                     "WHEN ?2 = 'succeeded' THEN 1 ELSE progress END WHERE id = ?1");
    update.bind(1, id).bind(2, state).bind(3, message).bind(4, utc_now());
    update.step();
}

void HostDatabase::set_task_progress(int64_t id, double progress) {
    std::lock_guard lock(mutex_);
    Statement update(*this, "UPDATE tasks SET progress = ?2 WHERE id = ?1");
    update.bind(1, id).bind_real(2, progress);
    update.step();
}

std::vector<HostDatabase::Task> HostDatabase::tasks(std::optional<int64_t> id) {
    std::lock_guard lock(mutex_);
    Statement query(*this,
                    "SELECT id, kind, vm, state, progress, message, created, finished FROM tasks "
                    "WHERE ?1 IS NULL OR id = ?1 ORDER BY id");
    if (id) {
        query.bind(1, *id);
    }
    std::vector<Task> tasks;
    while (query.step()) {
        tasks.push_back({query.number(0), query.text(1), query.text(2), query.text(3),
                         query.real(4), query.text(5), query.text(6), query.text(7)});
    }
    return tasks;
}

size_t HostDatabase::fail_running_tasks(std::string_view message) {
    std::lock_guard lock(mutex_);
    Statement update(*this,
                     "UPDATE tasks SET state = 'failed', message = ?1, finished = ?2 WHERE state = "
                     "'running'");
    update.bind(1, message).bind(2, utc_now());
    update.step();
    return static_cast<size_t>(sqlite3_changes(db_));
}

}  // namespace vireo
