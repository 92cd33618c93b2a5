// Scheduled backup-related jobs: PBS sync/verify/prune/tape jobs and datastore GC schedules (from the
// `proxmox-backup-manager` / `proxmox-tape` JSON lists), PVE vzdump jobs that target this PBS (from
// `pvesh get /cluster/backup` and `pvesh get /storage`), and jobs an operator passes in.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

struct ScheduledJob {
    std::string kind;      // sync, verify, prune, garbage_collection, tape_backup, vzdump, or the operator's
    std::string id;        // job id (datastore name for garbage_collection)
    std::string schedule;  // calendar event as configured
    std::string source;    // where it was read: "proxmox-backup-manager sync-job list", "pvesh /cluster/backup", ...
    std::string detail;    // what it touches: "store1 <- remote1:store", "vzdump to storage pbs1", ...
    std::optional<std::string> timezone;  // evaluate in this zone (PVE node's) instead of the PBS host's

    std::string key() const { return kind + ":" + id; }
    nlohmann::json to_json() const;
};

// A job that is configured but cannot start by itself (no schedule, disabled), reported, never gated on.
struct IgnoredJob {
    std::string kind;
    std::string id;
    std::string reason;
    nlohmann::json to_json() const { return {{"kind", kind}, {"id", id}, {"reason", reason}}; }
};

struct JobList {
    std::vector<ScheduledJob> jobs;
    std::vector<IgnoredJob> ignored;
    void append(JobList other);
};

struct JobListError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Each throws JobListError unless the text is a JSON array of objects with the keys PBS always writes.
JobList parse_sync_jobs(std::string_view json_text);         // id, store, remote?, remote-store, schedule?
JobList parse_verify_jobs(std::string_view json_text);       // id, store, schedule?
JobList parse_prune_jobs(std::string_view json_text);        // id, store, schedule, disable?
JobList parse_tape_backup_jobs(std::string_view json_text);  // id, store, pool, drive, schedule?
JobList parse_datastore_schedules(std::string_view json_text);  // name, gc-schedule?, prune-schedule? (pre-3.x)

// The PVE storages (`pvesh get /storage`) that are this PBS: storage id -> "server:datastore". A storage is
// this PBS when its type is `pbs`, its `server` is one of `pbs_servers` (case-insensitive; any pbs storage when
// the list is empty) and, when `pbs_datastores` is not empty, its `datastore` is one of them.
std::map<std::string, std::string> pbs_target_storages(const nlohmann::json& storages,
                                                       const std::vector<std::string>& pbs_servers,
                                                       const std::vector<std::string>& pbs_datastores);

// PVE vzdump jobs whose target storage is a `pbs` storage on this PBS. A storage matches when its
// `server` is one of `pbs_servers` (case-insensitive; any pbs storage when the list is empty) and, when
// `pbs_datastores` is not empty, its `datastore` is one of them. Disabled jobs (`enabled: 0`) are ignored;
// legacy jobs without `schedule` use `dow` + `starttime` as PVE itself does. A job without `storage` uses the
// node's vzdump defaults: pve_cluster fills it in and says so in `storage_from`; unresolved, it is ignored.
JobList select_pve_backup_jobs(const nlohmann::json& cluster_backup, const nlohmann::json& storages,
                               const std::vector<std::string>& pbs_servers,
                               const std::vector<std::string>& pbs_datastores);

// Operator-supplied jobs: [{id, schedule, kind?, timezone?, detail?}].
JobList parse_extra_jobs(const nlohmann::json& jobs);

}  // namespace pbs_patch
