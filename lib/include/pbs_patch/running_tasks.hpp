// Which PBS tasks run now, failing closed: `proxmox-backup-manager task list --output-format json` (running
// tasks only), and when the CLI fails (it asks the local API, down with the daemons) the daemon's own
// /var/log/proxmox-backup/tasks/active. Shared by pbs_gate (before the upgrade) and pbs_quiesce (before the reboot).
#pragma once

#include "pbs_patch/task_list.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace pbs_patch {

inline constexpr const char* kTaskActiveFile = "/var/log/proxmox-backup/tasks/active";

struct RunningTasks {
    std::vector<TaskItem> running;  // only tasks without endtime/status
    std::string source;             // "proxmox-backup-manager task list" or the active file's path
    std::string cli_problem;        // why the CLI was not used (empty when it was)
};

// Throws TaskListError when neither source can be read: never "no tasks" on an error.
RunningTasks read_running_tasks(const std::string& pbm_path, const std::string& active_file,
                                std::chrono::seconds timeout);

// `backup store1:vm/100 by root@pam since 2026-11-27T09:30:00Z (UPID:...)`
std::string describe_task(const TaskItem& task);

}  // namespace pbs_patch
