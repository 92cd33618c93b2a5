// The maintenance lease: the pure state machine (acquire, renew, take over, refuse, release, fail) and the
// file store, including processes racing for it (exactly one wins).
#include "pbs_patch/lease.hpp"
#include "pbs_patch/text.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace pbs_patch;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::int64_t kNow = 1795770000;

LeaseRequest req(const char* state, const char* token, std::int64_t now = kNow) {
    LeaseRequest r;
    r.state = state;
    r.owner = "pbs_patch";
    r.purpose = "patch pbs1";
    r.host = "pbs1";
    r.ttl_s = 3600;
    r.token = token;
    r.now = now;
    return r;
}

Lease held_by(const char* token, std::int64_t started = kNow, const char* owner = "pve_patch") {
    Lease l;
    l.owner = owner;
    l.purpose = "patch pve1";
    l.host = "pve1";
    l.started_at = started;
    l.ttl_s = 3600;
    l.token = token;
    return l;
}

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "pbs-lease-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

}  // namespace

TEST_CASE("acquire: free -> acquired with the request's fields") {
    const auto d = decide_lease(std::nullopt, req("acquired", "t1"), "HINT");
    CHECK(d.action == "acquired");
    CHECK(d.changed);
    CHECK_FALSE(d.refused);
    REQUIRE(d.next);
    CHECK(d.next->owner == "pbs_patch");
    CHECK(d.next->token == "t1");
    CHECK(d.next->state == "held");
    CHECK(d.next->expires_at() == kNow + 3600);
}

TEST_CASE("acquire: held by someone else and unexpired -> refused naming holder, purpose and expiry") {
    const auto d = decide_lease(held_by("other"), req("acquired", "t1", kNow + 60), "HINT");
    CHECK(d.action == "refused");
    CHECK(d.refused);
    CHECK_FALSE(d.changed);
    CHECK(d.message.find("owner 'pve_patch'") != std::string::npos);
    CHECK(d.message.find("purpose: patch pve1") != std::string::npos);
    CHECK(d.message.find("expires 2026-11-27T10:00:00Z") != std::string::npos);
}

TEST_CASE("acquire: expired -> taken over with a warning") {
    const auto d = decide_lease(held_by("other"), req("acquired", "t1", kNow + 3600), "HINT");
    CHECK(d.action == "taken_over");
    CHECK(d.changed);
    REQUIRE(d.warnings.size() == 1);
    CHECK(d.warnings[0].find("expired") != std::string::npos);
    CHECK(d.warnings[0].find("pve_patch") != std::string::npos);
    CHECK(d.next->token == "t1");
}

TEST_CASE("acquire: same token -> already held, nothing changes") {
    const auto d = decide_lease(held_by("t1"), req("acquired", "t1", kNow + 10), "HINT");
    CHECK(d.action == "already_held");
    CHECK_FALSE(d.changed);
}

TEST_CASE("a failed lease never expires and refuses everyone, with the clear command") {
    Lease failed = held_by("t1", kNow - 30 * 86400);
    failed.state = "failed";
    failed.failed_at = kNow - 30 * 86400;
    failed.failure = "pbs_health: proxmox-backup-proxy inactive";
    for (const char* token : {"t1", "t2"}) {
        const auto d = decide_lease(failed, req("acquired", token), "HINT: clear_lease.yml");
        CHECK(d.refused);
        CHECK(d.message.find("FAILED") != std::string::npos);
        CHECK(d.message.find("proxmox-backup-proxy inactive") != std::string::npos);
        CHECK(d.message.find("HINT: clear_lease.yml") != std::string::npos);
    }
    // The holder cannot release it either; only a forced release (the operator's) clears it.
    CHECK(decide_lease(failed, req("released", "t1"), "HINT").refused);
    auto force = req("released", "");
    force.force = true;
    const auto cleared = decide_lease(failed, force, "HINT");
    CHECK(cleared.action == "released");
    CHECK_FALSE(cleared.next);
    CHECK(cleared.warnings.size() == 1);
}

TEST_CASE("release: by the holder, not by others; idempotent") {
    auto d = decide_lease(held_by("t1"), req("released", "t1"), "HINT");
    CHECK(d.action == "released");
    CHECK(d.changed);
    CHECK_FALSE(d.next);
    d = decide_lease(held_by("t1"), req("released", "t2"), "HINT");
    CHECK(d.refused);
    CHECK(d.message.find("another token") != std::string::npos);
    d = decide_lease(std::nullopt, req("released", "t1"), "HINT");
    CHECK(d.action == "already_free");
    CHECK_FALSE(d.changed);
}

TEST_CASE("fail: marks the holder's lease failed; again = unchanged; no lease = a failed one is recorded") {
    auto r = req("failed", "t1", kNow + 100);
    r.reason = "upgrade failed";
    auto d = decide_lease(held_by("t1", kNow, "pbs_patch"), r, "HINT");
    CHECK(d.action == "marked_failed");
    CHECK(d.changed);
    REQUIRE(d.next);
    CHECK(d.next->failed());
    CHECK(d.next->failure == "upgrade failed");
    CHECK(d.next->failed_at == kNow + 100);
    CHECK_FALSE(d.next->expired(kNow + 365 * 86400));
    CHECK(d.next->to_json()["expires_at"].is_null());
    d = decide_lease(d.next, r, "HINT");
    CHECK(d.action == "already_failed");
    CHECK_FALSE(d.changed);
    d = decide_lease(std::nullopt, r, "HINT");
    CHECK(d.action == "marked_failed");
    CHECK(d.next->owner == "pbs_patch");
    CHECK(d.warnings.size() == 1);
    // Ours expired and someone took over: the failure still stops everyone.
    d = decide_lease(held_by("other"), r, "HINT");
    CHECK(d.action == "marked_failed");
    CHECK(d.next->token == "t1");
    CHECK(d.warnings[0].find("another holder") != std::string::npos);
}

TEST_CASE("Lease JSON round trip and refusal of malformed content") {
    Lease l = held_by("abc");
    const json j = l.to_json();
    CHECK(j["started_at"] == "2026-11-27T09:00:00Z");
    CHECK(j["expires_at"] == "2026-11-27T10:00:00Z");
    CHECK(j["state"] == "held");
    const Lease back = Lease::from_json(j);
    CHECK(back.started_at == l.started_at);
    CHECK(back.token == "abc");
    CHECK_THROWS_AS(Lease::from_json(json::array()), LeaseError);
    json bad = j;
    bad["state"] = "weird";
    CHECK_THROWS_AS(Lease::from_json(bad), LeaseError);
    bad = j;
    bad.erase("ttl_s");
    CHECK_THROWS_AS(Lease::from_json(bad), LeaseError);
    // Out-of-range numbers are malformed like any other content (2^64-1 used to wrap to -1: "expired").
    for (const char* ttl : {"18446744073709551615", "-5", "1e300", "7200.5", "\"7200\""}) {
        CAPTURE(ttl);
        bad = j;
        bad["ttl_s"] = json::parse(ttl);
        CHECK_THROWS_WITH_AS(Lease::from_json(bad), doctest::Contains("ttl_s"), LeaseError);
    }
}

TEST_CASE("file store: acquire writes, a second acquirer is refused, release removes; check mode writes nothing") {
    TempDir dir;
    const std::string path = (dir.path / "sub" / "maintenance.lease").string();
    auto r = req("acquired", "");
    r.now = std::time(nullptr);
    LeaseFileOptions check;
    check.check_mode = true;
    auto out = apply_lease(path, r, check);
    CHECK(out.decision.action == "acquired");
    CHECK_FALSE(fs::exists(path));
    CHECK_FALSE(fs::exists(dir.path / "sub"));

    out = apply_lease(path, r, {});
    CHECK(out.decision.action == "acquired");
    REQUIRE(fs::exists(path));
    const std::string token = out.decision.next->token;
    CHECK(token.size() == 32);
    const json on_disk = json::parse(read_file(path));
    CHECK(on_disk["token"] == token);
    CHECK(on_disk["owner"] == "pbs_patch");
    CHECK(fs::exists(path + ".lock"));

    auto other = req("acquired", "");
    other.now = r.now;
    out = apply_lease(path, other, {});
    CHECK(out.decision.refused);
    CHECK(json::parse(read_file(path))["token"] == token);

    auto release = req("released", token.c_str());
    release.now = r.now;
    out = apply_lease(path, release, check);
    CHECK(out.decision.action == "released");
    CHECK(fs::exists(path));
    out = apply_lease(path, release, {});
    CHECK(out.decision.action == "released");
    CHECK_FALSE(fs::exists(path));
}

TEST_CASE("file store: unreadable content refuses, a forced release clears it") {
    TempDir dir;
    const std::string path = (dir.path / "maintenance.lease").string();
    std::ofstream(path) << "{ half";
    auto out = apply_lease(path, req("acquired", "t"), {});
    CHECK(out.decision.refused);
    CHECK(out.decision.message.find("cannot be read") != std::string::npos);
    auto force = req("released", "");
    force.force = true;
    out = apply_lease(path, force, {});
    CHECK(out.decision.action == "released");
    CHECK_FALSE(fs::exists(path));
}

namespace {

struct RaceOutcome {
    int won = 0;
    int refused = 0;
    int other = 0;
};

// n forked processes ask for the lease at once; each exits 0 (acquired), 1 (refused), 2 (anything else) or
// 4 (an exception); counted once all have ended.
RaceOutcome race_for_lease(const std::string& path, const LeaseFileOptions& options, int n) {
    std::vector<pid_t> children;
    for (int i = 0; i < n; ++i) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int code = 3;
            try {
                auto r = req("acquired", "");
                r.now = std::time(nullptr);
                const auto out = apply_lease(path, r, options);
                code = out.decision.action == "acquired" ? 0 : (out.decision.refused ? 1 : 2);
            } catch (...) {
                code = 4;
            }
            ::_exit(code);
        }
        children.push_back(pid);
    }
    RaceOutcome outcome;
    for (pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 99;
        if (code == 0) ++outcome.won;
        else if (code == 1) ++outcome.refused;
        else ++outcome.other;
    }
    return outcome;
}

}  // namespace

TEST_CASE("file store: processes racing for the lease, exactly one wins") {
    TempDir dir;
    const std::string path = (dir.path / "maintenance.lease").string();
    for (int round = 0; round < 5; ++round) {
        std::error_code ec;
        fs::remove(path, ec);
        const auto outcome = race_for_lease(path, {}, 8);
        CAPTURE(round);
        CHECK(outcome.won == 1);
        CHECK(outcome.refused == 7);
        CHECK(outcome.other == 0);
    }
}

TEST_CASE("cfs lock id: the one PVE::Cluster cfs_lock_file would use") {
    CHECK(cfs_lock_id("/etc/pve/priv/pbs-patch/maintenance.lease", "/etc/pve/priv/lock") ==
          "file-priv_pbs-patch_maintenance_lease");
    CHECK(cfs_lock_id("/srv/lab/pmxcfs/priv/pbs-patch/x.lease", "/srv/lab/pmxcfs/priv/lock/") == "file-priv_pbs-patch_x_lease");
    CHECK(cfs_lock_id("/var/lib/pbs-patch/maintenance.lease", "/etc/pve/priv/lock") ==
          "file-var_lib_pbs-patch_maintenance_lease");
}

TEST_CASE("cluster lease: serialised by mkdir in the lock dir (no flock file), lock dir removed afterwards") {
    TempDir dir;
    const auto cfs = dir.path / "pmxcfs";
    fs::create_directories(cfs / "priv");
    const std::string path = (cfs / "priv" / "pbs-patch" / "maintenance.lease").string();
    LeaseFileOptions o;
    o.cfs_lock_dir = (cfs / "priv" / "lock").string();
    auto r = req("acquired", "");
    r.now = std::time(nullptr);
    auto out = apply_lease(path, r, o);
    CHECK(out.decision.action == "acquired");
    CHECK(fs::exists(path));
    CHECK_FALSE(fs::exists(path + ".lock"));
    CHECK(fs::is_directory(cfs / "priv" / "lock"));
    CHECK(fs::is_empty(cfs / "priv" / "lock"));  // rmdir'ed after the operation
    // Another node (same cluster filesystem) is refused, naming the holder.
    auto other = req("acquired", "");
    other.owner = "pve_patch";
    other.now = r.now;
    out = apply_lease(path, other, o);
    CHECK(out.decision.refused);
    CHECK(out.decision.message.find("owner 'pbs_patch'") != std::string::npos);
    // The clear hint names the lock dir too.
    auto failed = req("failed", out.previous->token.c_str());
    failed.now = r.now;
    out = apply_lease(path, failed, o);
    CHECK(out.decision.message.find("maintenance_lease_lock_dir=" + o.cfs_lock_dir) != std::string::npos);
}

TEST_CASE("cluster lease: a held cfs lock is waited for with unlock requests, then a PVE-style timeout") {
    TempDir dir;
    const auto lockdir = dir.path / "priv" / "lock";
    fs::create_directories(lockdir);
    const std::string path = (dir.path / "priv" / "maintenance.lease").string();
    const auto held = lockdir / cfs_lock_id(path, lockdir.string());
    fs::create_directory(held);
    LeaseFileOptions o;
    o.cfs_lock_dir = lockdir.string();
    o.lock_timeout = std::chrono::milliseconds(300);
    auto r = req("acquired", "");
    r.now = std::time(nullptr);
    CHECK_THROWS_WITH_AS(apply_lease(path, r, o), doctest::Contains("got lock request timeout"), LeaseError);
    // The waiter sent unlock requests (utime 0, 0), as cfs_lock does; the lock itself is not ours to remove.
    CHECK(fs::is_directory(held));
    struct stat st {};
    REQUIRE(::stat(held.c_str(), &st) == 0);
    CHECK(st.st_mtime == 0);
    CHECK_FALSE(fs::exists(path));
    // Once the holder is done, the same request goes through.
    fs::remove(held);
    CHECK(apply_lease(path, r, o).decision.action == "acquired");
}

TEST_CASE("cluster lease: a lock dir that cannot be created (read-only cluster filesystem) is an error") {
    TempDir dir;
    std::ofstream(dir.path / "priv") << "not a directory";
    LeaseFileOptions o;
    o.cfs_lock_dir = (dir.path / "priv" / "lock").string();
    auto r = req("acquired", "");
    CHECK_THROWS_WITH_AS(apply_lease((dir.path / "x" / "maintenance.lease").string(), r, o),
                         doctest::Contains("pve cluster filesystem not online"), LeaseError);
}

TEST_CASE("cluster lease: processes on 'several nodes' racing through the cfs lock, exactly one wins") {
    TempDir dir;
    const std::string path = (dir.path / "priv" / "pbs-patch" / "maintenance.lease").string();
    fs::create_directories(dir.path / "priv");
    LeaseFileOptions o;
    o.cfs_lock_dir = (dir.path / "priv" / "lock").string();
    const auto outcome = race_for_lease(path, o, 6);
    CHECK(outcome.won == 1);
    CHECK(outcome.refused == 5);
    CHECK(outcome.other == 0);
}
