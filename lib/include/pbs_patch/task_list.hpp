// PBS task state: UPIDs, `proxmox-backup-manager task list` JSON and the tasks/active file.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

struct Upid {
    std::string node;
    std::int64_t pid = 0;
    std::int64_t pstart = 0;
    std::uint64_t task_id = 0;
    std::int64_t starttime = 0;
    std::string worker_type;
    std::string worker_id;  // systemd-unescaped; empty when the task has none
    std::string authid;
};

// `UPID:{node}:{pid:08X}:{pstart:08X}:{task_id:08X}:{starttime:08X}:{type}:{id}:{authid}:`
std::optional<Upid> parse_upid(std::string_view text);

// systemd unit-name unescaping as PBS applies it to worker ids: `-` is `/`, `\xNN` a byte.
std::string systemd_unescape(std::string_view text);

struct TaskItem {
    std::string upid;
    std::string node;
    std::int64_t pid = 0;
    std::int64_t pstart = 0;
    std::int64_t starttime = 0;
    std::string worker_type;
    std::optional<std::string> worker_id;
    std::string user;
    std::optional<std::int64_t> endtime;
    std::optional<std::string> status;

    // Running = no endtime and no status (pbs-api-types TaskListItem).
    bool running() const { return !endtime && !status; }
    nlohmann::json to_json() const;
};

enum class TaskOutcome { Running, Ok, Warnings, Error };
TaskOutcome task_outcome(const TaskItem& task);
std::string to_string(TaskOutcome outcome);

struct TaskListError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Parses `task list --output-format json|json-pretty`. Throws TaskListError when the text is not
// a JSON array of task objects: a gate must never read garbage as "no tasks".
std::vector<TaskItem> parse_task_list_json(std::string_view text);

// Parses /var/log/proxmox-backup/tasks/active: `UPID` alone = running,
// `UPID <endtime-hex> <status...>` = finished. Throws TaskListError on a line that is not a task.
std::vector<TaskItem> parse_active_tasks(std::string_view text);

}  // namespace pbs_patch
