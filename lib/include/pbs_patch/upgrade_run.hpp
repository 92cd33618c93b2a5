// The detached dist-upgrade: pbs_upgrade runs its work in a worker outside the Ansible connection (a transient
// systemd unit, or a daemonised process where systemd is not PID 1), so that a dropped SSH session, a crashed
// control node or a cancelled Semaphore job never kills apt/dpkg. The worker's state lives in one directory:
//   state.json   what runs or ran (UpgradeRun), written atomically
//   run.lock     flock held by the worker for its whole life: held = a worker is alive (no pid guessing)
//   spawn.lock   flock held while a foreground checks and starts a worker (no two workers)
//   worker.json  the worker's arguments (0600), pbs_upgrade   the worker's copy of the module binary
// A later run (a rerun after a lost connection) finds a running worker and waits for it, or a finished one
// whose result nobody received and reports it; pbs_gate recognises the worker and its apt/dpkg as ours.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pbs_patch {

struct UpgradeRunError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr const char* kUpgradeStateDir = "/var/lib/pbs-patch/upgrade";
constexpr const char* kUpgradeUnit = "pbs-patch-upgrade.service";

struct UpgradeRun {
    std::string run_id;
    std::string status;  // "starting", "running", "finished"
    std::string mode;    // "systemd" or "daemon"
    std::string unit;    // the systemd unit ("" in daemon mode)
    int worker_pid = 0;
    std::string boot_id;
    std::int64_t started_at = 0;  // Unix time
    std::int64_t bound_s = 0;     // the worker's own hard bound: the sum of its steps' bounds
    std::optional<std::int64_t> finished_at;
    bool consumed = false;        // a foreground received and returned the result
    nlohmann::json result;        // the module result, once finished

    std::int64_t deadline() const { return started_at + bound_s; }
    bool finished() const { return status == "finished"; }
    // "the pbs_upgrade started at 2026-12-01T10:00:00Z (run 1a2b, pid 812, unit pbs-patch-upgrade.service)"
    std::string describe() const;
    nlohmann::json to_json() const;
    static UpgradeRun from_json(const nlohmann::json& j);  // throws UpgradeRunError
};

// What a new pbs_upgrade finds in the state directory.
enum class PreviousRun {
    None,           // nothing, or a state of an earlier boot (the reboot ended it, and was reported)
    Running,        // a worker is alive: wait for it, never start a second apt beside it
    Unreported,     // finished in this boot, and nobody received its result: report it
    Reported,       // finished, and its run returned the result
    Died,           // not alive, not finished (killed, crashed): its result is lost, dpkg must be checked
};
PreviousRun classify_previous_run(const std::optional<UpgradeRun>& state, bool worker_alive,
                                  const std::string& boot_id_now);
std::string to_string(PreviousRun p);

// Package changes of an earlier (unreported) run and of this one, as one list: from = the earliest known
// version, to = the latest; entries that end where they began are dropped. Both lists are pbs_upgrade's
// `packages` shape ({name, from, to, action}).
nlohmann::json merge_package_changes(const nlohmann::json& earlier, const nlohmann::json& later);

class UpgradeRunDir {
public:
    explicit UpgradeRunDir(std::string dir) : dir_(std::move(dir)) {}
    const std::string& path() const { return dir_; }
    std::string file(const char* name) const { return dir_ + "/" + name; }

    void ensure() const;                             // mkdir -p, mode 0700; throws UpgradeRunError
    std::optional<UpgradeRun> read() const;          // nullopt when absent; throws UpgradeRunError if malformed
    void write(const UpgradeRun& run) const;         // atomic (temp file + rename); throws UpgradeRunError
    bool worker_alive() const;                       // run.lock held by another open file description

    // Takes a lock file of the directory (LOCK_EX), waiting at most `wait`; returns its fd (close-on-exec,
    // so apt/dpkg never inherit it) or -1 on timeout. Throws UpgradeRunError when it cannot open it.
    int lock(const char* name, std::chrono::milliseconds wait) const;

private:
    std::string dir_;
};

// Releases a lock taken with UpgradeRunDir::lock.
void unlock(int fd);

// True when systemd is PID 1 (sd_booted(): /run/systemd/system exists).
bool systemd_booted();

// A new run id (random, 16 hex digits).
std::string new_run_id();

}  // namespace pbs_patch
