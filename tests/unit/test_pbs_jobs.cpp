// Job lists in the JSON shapes of PBS's config API (pbs-api-types SyncJobConfig, VerificationJobConfig,
// PruneJobConfig, TapeBackupJobConfig, DataStoreConfig) and PVE's /cluster/backup and /storage. The samples are
// written from those type definitions (no PBS/PVE host to record from here).
#include "fixtures.hpp"
#include "pbs_patch/pbs_jobs.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;
using nlohmann::json;

TEST_CASE("sync jobs: remote, local and push jobs; no schedule = by hand only") {
    const auto l = parse_sync_jobs(fixture("sync_job_list.json"));
    REQUIRE(l.jobs.size() == 3);
    CHECK(l.jobs[0].kind == "sync");
    CHECK(l.jobs[0].id == "s-offsite-pull");
    CHECK(l.jobs[0].schedule == "*:0/30");
    CHECK(l.jobs[0].detail == "store1 <- offsite:backup");
    CHECK(l.jobs[1].detail == "store2 (ns copies) <- store1");
    CHECK(l.jobs[2].detail == "store1 -> offsite:archive (ns pbs1)");
    CHECK(l.jobs[0].key() == "sync:s-offsite-pull");
    REQUIRE(l.ignored.size() == 1);
    CHECK(l.ignored[0].id == "s-manual");
}

TEST_CASE("verify, prune (disable flag) and tape jobs") {
    const auto v = parse_verify_jobs(fixture("verify_job_list.json"));
    REQUIRE(v.jobs.size() == 1);
    CHECK(v.jobs[0].schedule == "daily");
    CHECK(v.ignored.size() == 1);
    const auto p = parse_prune_jobs(fixture("prune_job_list.json"));
    REQUIRE(p.jobs.size() == 1);
    CHECK(p.jobs[0].id == "p-store1");
    REQUIRE(p.ignored.size() == 1);
    CHECK(p.ignored[0].reason == "disabled");
    const auto t = parse_tape_backup_jobs(fixture("tape_backup_job_list.json"));
    REQUIRE(t.jobs.size() == 1);
    CHECK(t.jobs[0].kind == "tape_backup");
    CHECK(t.jobs[0].detail == "store1 to pool weekly on drive lto8");
}

TEST_CASE("datastores: gc-schedule, and the pre-prune-job prune-schedule") {
    const auto d = parse_datastore_schedules(fixture("datastore_list.json"));
    REQUIRE(d.jobs.size() == 2);
    CHECK(d.jobs[0].kind == "garbage_collection");
    CHECK(d.jobs[0].id == "store1");
    CHECK(d.jobs[0].schedule == "daily");
    CHECK(d.jobs[1].kind == "prune");
    CHECK(d.ignored.size() == 3);
    CHECK(parse_datastore_schedules(fixture("datastore_list_empty.json")).jobs.empty());
}

TEST_CASE("job lists: malformed input is an error, never an empty list") {
    CHECK_THROWS_AS(parse_sync_jobs("┌──────┐"), JobListError);
    CHECK_THROWS_AS(parse_sync_jobs("{\"id\": \"x\"}"), JobListError);
    CHECK_THROWS_AS(parse_verify_jobs("[1]"), JobListError);
    CHECK_THROWS_WITH_AS(parse_prune_jobs(R"([{"store":"s","schedule":"daily"}])"), doctest::Contains("without 'id'"),
                         JobListError);
    CHECK(parse_sync_jobs("[]").jobs.empty());
    CHECK(parse_sync_jobs(R"({"data": [{"id":"a","store":"s","remote-store":"r","schedule":"daily"}]})").jobs.size() == 1);
}

TEST_CASE("PVE vzdump jobs that target this PBS") {
    const json backup = json::parse(fixture("pvesh_cluster_backup.json"));
    const json storage = json::parse(fixture("pvesh_storage.json"));
    const auto l = select_pve_backup_jobs(backup, storage, {"pbs.lab.lan"}, {});
    REQUIRE(l.jobs.size() == 2);
    CHECK(l.jobs[0].id == "backup-5d0c1a2b-7e61");
    CHECK(l.jobs[0].schedule == "21:00");
    CHECK(l.jobs[0].detail == "vzdump of all guests to storage pbs1 (PBS.lab.lan:store1)");
    CHECK(l.jobs[1].id == "backup-legacy-03");
    CHECK(l.jobs[1].schedule == "sat 03:15");  // dow + starttime, as PVE converts them
    CHECK(l.jobs[1].detail == "vzdump of guests 103 on node pve1 to storage pbs1 (PBS.lab.lan:store1)");
    std::map<std::string, std::string> why;
    for (const auto& i : l.ignored) why[i.id] = i.reason;
    CHECK(why["backup-disabled-01"] == "disabled (enabled: 0)");
    CHECK(why["backup-local-02"] == "targets storage 'local', not this PBS");
    CHECK(why["backup-other-pbs-04"] == "targets storage 'pbs-other', not this PBS");
    CHECK(why["backup-nostorage-05"] == "no storage set (vzdump's default storage, not resolved)");
}

TEST_CASE("PVE vzdump jobs: server list empty = every pbs storage; datastore filter") {
    const json backup = json::parse(fixture("pvesh_cluster_backup.json"));
    const json storage = json::parse(fixture("pvesh_storage.json"));
    CHECK(select_pve_backup_jobs(backup, storage, {}, {}).jobs.size() == 3);
    CHECK(select_pve_backup_jobs(backup, storage, {}, {"x"}).jobs.size() == 1);
    CHECK(select_pve_backup_jobs(backup, storage, {"other.host"}, {}).jobs.empty());
    CHECK_THROWS_AS(select_pve_backup_jobs(json::object(), storage, {}, {}), JobListError);
}

TEST_CASE("operator jobs: id + schedule, optional kind/timezone/detail/enabled; unknown keys refused") {
    const auto l = parse_extra_jobs(json::parse(R"([
        {"id": "omv-rsync", "schedule": "sun 04:00", "kind": "omv", "timezone": "Europe/Berlin"},
        {"id": "plain", "schedule": "daily"},
        {"id": "off", "schedule": "daily", "enabled": false}])"));
    REQUIRE(l.jobs.size() == 2);
    CHECK(l.jobs[0].kind == "omv");
    CHECK(l.jobs[0].timezone == "Europe/Berlin");
    CHECK(l.jobs[1].kind == "job");
    CHECK_FALSE(l.jobs[1].timezone);
    CHECK(l.ignored.size() == 1);
    CHECK_THROWS_WITH_AS(parse_extra_jobs(json::parse(R"([{"id": "x", "schedule": "daily", "when": 1}])")),
                         doctest::Contains("unknown key 'when'"), JobListError);
    CHECK_THROWS_AS(parse_extra_jobs(json::parse(R"([{"id": "x"}])")), JobListError);
}
