// Proxmox VE tasks: UPIDs (pve-common PVE/UPID.pm), the cluster-wide task list `pvesh get /cluster/tasks`
// (pvestatd broadcasts each node's active-workers list), task logs (`/nodes/<node>/tasks/<upid>/log`), the
// vzdump job line a backup task logs first (pve-manager PVE/VZDump.pm "starting new backup job: <cmdline>",
// the cmdline from pve-guest-common PVE/VZDump/Common.pm command_line), and a node's vzdump defaults
// (`/nodes/<node>/vzdump/defaults`, pve-manager PVE/API2/VZDump.pm).
#pragma once

#include "pbs_patch/pve_json.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

// "UPID:$node:%08X pid:%08X pstart:%08X starttime:$type:$id:$user:" (pstart may have 9 digits).
struct PveUpid {
    std::string node;
    std::int64_t pid = 0;
    std::int64_t pstart = 0;
    std::int64_t starttime = 0;
    std::string type;
    std::string id;
    std::string user;
};
std::optional<PveUpid> parse_pve_upid(std::string_view text);

struct PveTask {
    std::string upid;
    std::string node;
    std::string type;  // vzdump, qmreboot, qmigrate, ...
    std::string id;    // the guest for single-guest tasks, "" otherwise
    std::string user;
    std::int64_t starttime = 0;
    std::optional<std::int64_t> endtime;
    std::string status;  // OK, WARNINGS: N, or the error; "" while running

    // Running = no endtime (a finished task always has one: PVE::RESTEnvironment active_workers).
    bool running() const { return !endtime; }
    nlohmann::json to_json() const;
};

// Throws PveJsonError unless every entry has a UPID that parses and agrees with its node/type/starttime.
std::vector<PveTask> parse_cluster_tasks(std::string_view text);

// `[{"n": 1, "t": "line"}, ...]` -> the lines, in order. Throws PveJsonError on another shape.
std::vector<std::string> parse_task_log(std::string_view text);

// What a vzdump task was asked to do, from its "starting new backup job:" line.
struct VzdumpJobLine {
    bool found = false;
    std::string cmdline;  // "vzdump 101 --storage pbs1 --mode snapshot"
    std::vector<std::string> vmids;
    bool all = false;
    std::string storage;  // "" = not given on the command line (the node's defaults apply)
    std::string dumpdir;
    std::string node;
};
VzdumpJobLine find_vzdump_job_line(const std::vector<std::string>& log_lines);

// Words of a command line as PVE::Tools::shellquote writes them ('...' with '\'' for a quote).
std::vector<std::string> split_shell_words(std::string_view text);

// The node's effective vzdump defaults: `storage` (PVE answers 'local' when neither storage nor dumpdir is
// set in /etc/vzdump.conf) or `dumpdir`.
struct VzdumpDefaults {
    std::string storage;
    std::string dumpdir;
    nlohmann::json to_json() const;
};
VzdumpDefaults parse_vzdump_defaults(std::string_view text);

}  // namespace pbs_patch
