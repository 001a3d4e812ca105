// API tokens and the host's TLS identity; the tokens' table in the host
// database, and a database of the first schema brought up to date.
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "base/error.h"
#include "host/api_tokens.h"
#include "host/host_database.h"
#include "host/tls_identity.h"

namespace vireo {
namespace {

class TempFolder : public testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/vireo-auth-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        root_ = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(root_); }

    std::filesystem::path root_;
};

TEST(ApiTokens, SecretsAreFreshAndHashedWithSha256) {
    std::set<std::string> secrets;
    for (int i = 0; i < 100; ++i) {
        std::string secret = new_token_secret();
        ASSERT_EQ(secret.size(), 6 + 64u);
        EXPECT_TRUE(secret.starts_with("vireo_"));
        EXPECT_EQ(secret.find_first_not_of("0123456789abcdef", 6), std::string::npos);
        secrets.insert(secret);
    }
    EXPECT_EQ(secrets.size(), 100u);
    // FIPS 180-2's example.
    EXPECT_EQ(token_hash("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiTokens, RolesHaveTheirNames) {
    EXPECT_EQ(parse_role("admin"), ApiRole::admin);
    EXPECT_EQ(parse_role("read-only"), ApiRole::read_only);
    EXPECT_EQ(parse_role("root"), std::nullopt);
    EXPECT_EQ(role_name(ApiRole::read_only), "read-only");
}

using TlsIdentityTest = TempFolder;

TEST_F(TlsIdentityTest, TheHostsOwnIsMadeOnceAndKept) {
    TlsIdentity first = tls_identity(root_, {}, {});
    EXPECT_EQ(first.certificate, root_ / "tls" / "host.crt");
    EXPECT_EQ(std::filesystem::status(first.key).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    EXPECT_EQ(first.fingerprint.size(), 32 * 3 - 1u);
    TlsIdentity again = tls_identity(root_, {}, {});
    EXPECT_EQ(again.fingerprint, first.fingerprint);
    // The operator's own pair is used as given.
    TlsIdentity given = tls_identity(root_ / "elsewhere", first.certificate, first.key);
    EXPECT_EQ(given.fingerprint, first.fingerprint);
    EXPECT_FALSE(std::filesystem::exists(root_ / "elsewhere"));
}

TEST_F(TlsIdentityTest, BadFilesAreNamed) {
    EXPECT_THROW(tls_identity(root_, root_ / "a.crt", {}), Error);
    std::ofstream(root_ / "junk.crt") << "not a certificate";
    try {
        tls_identity(root_, root_ / "junk.crt", root_ / "junk.key");
        FAIL() << "a junk certificate was taken";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("junk.crt"), std::string::npos) << error.what();
    }
}

using HostDatabaseTokens = TempFolder;

TEST_F(HostDatabaseTokens, KeptByHashRevokedByName) {
    HostDatabase database(root_ / "vireod.db");
    database.insert_token({"ops", "admin", "2026-12-05T00:00:00Z"}, token_hash("secret-1"));
    EXPECT_THROW(database.insert_token({"ops", "read-only", "x"}, token_hash("secret-2")), Error);
    std::optional<HostDatabase::Token> found = database.find_token_by_hash(token_hash("secret-1"));
    ASSERT_TRUE(found);
    EXPECT_EQ(found->name, "ops");
    EXPECT_EQ(found->role, "admin");
    EXPECT_FALSE(database.find_token_by_hash(token_hash("secret-2")));
    EXPECT_EQ(database.tokens().size(), 1u);
    EXPECT_TRUE(database.delete_token("ops"));
    EXPECT_FALSE(database.delete_token("ops"));
    EXPECT_FALSE(database.find_token_by_hash(token_hash("secret-1")));
}

TEST_F(HostDatabaseTokens, AFirstSchemaDatabaseIsBroughtUpToDateKeepingItsVms) {
    std::filesystem::path file = root_ / "vireod.db";
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw,
                           "CREATE TABLE vms (name TEXT PRIMARY KEY, datastore TEXT NOT NULL, "
                           "stage TEXT NOT NULL, created TEXT NOT NULL);"
                           "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT "
                           "NOT NULL, vm TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL);"
                           "INSERT INTO vms VALUES ('old', 'ds1', 'registered', 'then');"
                           "PRAGMA user_version = 1;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(raw);
    HostDatabase database(file);
    ASSERT_EQ(database.vms().size(), 1u);
    EXPECT_EQ(database.vms()[0].name, "old");
    database.insert_token({"ops", "admin", "now"}, token_hash("s"));
    EXPECT_EQ(database.tokens().size(), 1u);
}

}  // namespace
}  // namespace vireo
