// The maintenance lease: one JSON file on the Proxmox VE node that PBS patching, PVE patching and OMV
// maintenance all take before changing anything, so that they never overlap. A pure state machine
// (decide_lease) plus the file store (apply_lease: flock on a sidecar lock file, write temp + rename).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pbs_patch {

struct LeaseError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Lease {
    std::string owner;    // who runs the maintenance ("pbs_patch", "pve_patch", ...)
    std::string purpose;  // what for, shown to whoever is refused
    std::string host;     // the host under maintenance
    std::int64_t started_at = 0;
    std::int64_t ttl_s = 0;
    std::string state = "held";  // "held" or "failed" (a failed lease never expires)
    std::string token;           // only the holder of the token releases the lease
    std::optional<std::int64_t> failed_at;
    std::string failure;         // why it was marked failed

    std::int64_t expires_at() const { return started_at + ttl_s; }
    bool failed() const { return state == "failed"; }
    bool expired(std::int64_t now) const { return !failed() && now >= expires_at(); }
    nlohmann::json to_json() const;
    static Lease from_json(const nlohmann::json& j);  // throws LeaseError naming the bad key
    std::string describe() const;  // "owner 'x' (purpose 'y') on host z since ... until ..."
};

struct LeaseRequest {
    std::string state = "acquired";  // acquired | released | failed
    std::string owner;
    std::string purpose;
    std::string host;
    std::int64_t ttl_s = 7200;
    std::string token;    // acquired: the new holder's token (generated when empty); released/failed: the holder's
    bool force = false;   // released: clear whatever is there (an operator's command)
    std::string reason;   // failed: why
    std::int64_t now = 0;
};

struct LeaseDecision {
    // acquired, already_held, taken_over, refused, released, already_free, marked_failed, already_failed
    std::string action;
    bool changed = false;
    bool refused = false;           // the module fails
    std::string message;
    std::optional<Lease> next;      // the lease after the change; nullopt = no lease file
    std::vector<std::string> warnings;
};

// What a request does to the current lease (nullopt = none). Pure: no clock, no files.
LeaseDecision decide_lease(const std::optional<Lease>& current, const LeaseRequest& request,
                           const std::string& clear_hint);

struct LeaseOutcome {
    LeaseDecision decision;
    std::optional<Lease> previous;
    nlohmann::json previous_raw;  // the file's JSON as found (null when absent)
};

struct LeaseFileOptions {
    std::chrono::milliseconds lock_timeout{std::chrono::seconds(30)};
    bool check_mode = false;  // decide, change nothing
    // On a Proxmox VE cluster: the cluster filesystem's lock directory (/etc/pve/priv/lock). Each operation is
    // then serialised the way PVE::Cluster cfs_lock does it, cluster-wide (pmxcfs makes mkdir atomic across
    // nodes; flock on /etc/pve is node-local): mkdir <dir>/<lockid>, on EEXIST an unlock request
    // (utime 0, 0: pmxcfs removes a lock unchanged for 120 s) and a retry until lock_timeout, rmdir at the end.
    // Empty: a node-local flock on `<path>.lock`.
    std::string cfs_lock_dir;
};

// Applies the request to the lease file at `path` under an exclusive flock on `path + ".lock"`; writes the
// new content to a temporary file and renames it over the lease (readers never see a partial file).
// A lease file that cannot be parsed refuses every request but a forced release.
LeaseOutcome apply_lease(const std::string& path, LeaseRequest request, const LeaseFileOptions& options);

// The lock id PVE::Cluster cfs_lock_file would use for the lease file: "file-" + its path below the cluster
// filesystem (the parent of `<lock_dir>`'s "priv/lock"), '.' and '/' replaced by '_'.
std::string cfs_lock_id(const std::string& lease_path, const std::string& lock_dir);

// How an operator clears a lease at `path` (in every refusal message about a failed lease).
std::string lease_clear_hint(const std::string& path, const std::string& cfs_lock_dir = "");

// A fresh random token (hex).
std::string new_lease_token();

}  // namespace pbs_patch
