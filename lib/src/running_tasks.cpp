// Running PBS tasks from the CLI, with the tasks/active file as the fallback.
#include "pbs_patch/running_tasks.hpp"

#include "pbs_patch/process.hpp"
#include "pbs_patch/system_info.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

namespace pbs_patch {

RunningTasks read_running_tasks(const std::string& pbm_path, const std::string& active_file,
                                std::chrono::seconds timeout) {
    RunningTasks result;
    RunOptions options;
    options.timeout = timeout;
    const auto cli = run_process({pbm_path, "task", "list", "--output-format", "json"}, options);
    std::vector<TaskItem> tasks;
    if (cli.rc == 0) {
        try {
            tasks = parse_task_list_json(cli.out);
            result.source = "proxmox-backup-manager task list";
        } catch (const TaskListError& e) {
            result.cli_problem = e.what();
        }
    } else {
        result.cli_problem = cli.timed_out ? fmt::format("timed out after {} s", timeout.count())
                                           : fmt::format("rc {}: {}", cli.rc, tail_lines(trim(cli.err + cli.error), 3));
    }
    if (!result.cli_problem.empty()) {
        try {
            tasks = parse_active_tasks(read_file(active_file));
        } catch (const std::exception& e) {
            throw TaskListError(fmt::format("cannot tell whether PBS tasks are running (task list: {}; {})",
                                            result.cli_problem, e.what()));
        }
        result.source = active_file;
    }
    for (auto& t : tasks) {
        if (t.running()) result.running.push_back(std::move(t));
    }
    return result;
}

std::string describe_task(const TaskItem& t) {
    return fmt::format("{} {} by {} since {} ({})", t.worker_type, t.worker_id.value_or("-"), t.user,
                       utc_iso(t.starttime), t.upid);
}

}  // namespace pbs_patch
