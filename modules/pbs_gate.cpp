// pbs_gate: the spec's hard gates before any package change on a PBS host. Each gate is reported
// in `checks`; the first failure stops the run, and nothing after it (dpkg repair included) runs.
#include "pbs_patch/apt_activity.hpp"
#include "pbs_patch/dpkg_audit.hpp"
#include "pbs_patch/module.hpp"
#include "pbs_patch/process.hpp"
#include "pbs_patch/running_tasks.hpp"
#include "pbs_patch/system_info.hpp"
#include "pbs_patch/task_list.hpp"
#include "pbs_patch/text.hpp"
#include "pbs_patch/upgrade_run.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>
#include <map>
#include <thread>
#include <unistd.h>

namespace {

using nlohmann::json;
using namespace pbs_patch;
using Clock = std::chrono::steady_clock;

const ParamSpecs kSpec = {
    {.name = "pbm_path", .type = ParamType::Path, .default_value = "/usr/sbin/proxmox-backup-manager"},
    {.name = "min_root_free_gb", .type = ParamType::Int, .default_value = 5, .min_value = 0},
    {.name = "root_path", .type = ParamType::Path, .default_value = "/"},
    {.name = "task_active_file", .type = ParamType::Path, .default_value = kTaskActiveFile},
    {.name = "apt_wait_timeout", .type = ParamType::Int, .default_value = 300, .min_value = 0},
    {.name = "apt_poll_interval", .type = ParamType::Int, .default_value = 5, .min_value = 1},
    {.name = "lock_files", .type = ParamType::List, .default_value = default_lock_files()},
    {.name = "repair_dpkg", .type = ParamType::Bool, .default_value = true},
    {.name = "command_timeout", .type = ParamType::Int, .default_value = 60, .min_value = 1},
    {.name = "dpkg_configure_timeout", .type = ParamType::Int, .default_value = 900, .min_value = 1},
    {.name = "reboot_required_file", .type = ParamType::Path, .default_value = "/var/run/reboot-required"},
    {.name = "proc_path", .type = ParamType::Path, .default_value = "/proc"},
    {.name = "upgrade_state_dir", .type = ParamType::Path, .default_value = kUpgradeStateDir},
};

const char* const kCheckOrder[] = {"tooling", "root_free_space", "running_tasks", "package_manager", "dpkg_state"};

std::string describe_process(int pid, const std::string& comm, const std::string& cmdline) {
    return fmt::format("pid {} ({})", pid, cmdline.empty() ? comm : cmdline);
}

// A gate outcome; `failed()` ends the run.
struct Check {
    std::string status = "passed";
    std::string detail;
    json data = json::object();

    static Check pass(std::string detail, json data = json::object()) { return {"passed", std::move(detail), std::move(data)}; }
    static Check fail(std::string detail, json data = json::object()) { return {"failed", std::move(detail), std::move(data)}; }
    static Check skip(std::string detail, json data = json::object()) { return {"skipped", std::move(detail), std::move(data)}; }
    bool failed() const { return status == "failed"; }
    json to_json() const {
        json j = data;
        j["status"] = status;
        j["detail"] = detail;
        return j;
    }
};

class Gate {
public:
    explicit Gate(Module& module) : m_(module) {}

    Check tooling() {
        const std::string pbm = m_.str("pbm_path");
        if (find_executable(pbm).empty()) {
            return Check::fail(fmt::format("{} not found or not executable: not a Proxmox Backup Server host", pbm),
                               {{"path", pbm}});
        }
        return Check::pass(fmt::format("{} present", pbm), {{"path", pbm}});
    }

    Check root_free_space() {
        const std::string path = m_.str("root_path");
        const long long need = m_.integer("min_root_free_gb");
        const DiskSpace space = probe_disk_space(path);
        root_free_ = space;
        json data{{"path", path}, {"avail_gb", space.avail_gib}, {"avail_bytes", space.avail_bytes}, {"min_gb", need}};
        const double exact = static_cast<double>(space.avail_bytes) / static_cast<double>(kGiB);
        if (m_.check_mode()) {
            return Check::skip(fmt::format("skipped in check mode ({:.2f} GiB available on {}, {} GiB required)",
                                           exact, path, need),
                               data);
        }
        // Compared in bytes: df's rounding up must not let 4.1 GiB pass a 5 GiB minimum.
        if (space.avail_bytes < static_cast<unsigned long long>(need) * kGiB) {
            return Check::fail(fmt::format("{:.2f} GiB available on {}, below the {} GiB minimum", exact, path, need), data);
        }
        return Check::pass(fmt::format("{:.2f} GiB available on {} (minimum {} GiB)", exact, path, need), data);
    }

    Check running_tasks() {
        RunningTasks found;
        try {
            found = read_running_tasks(m_.str("pbm_path"), m_.str("task_active_file"),
                                       std::chrono::seconds(m_.integer("command_timeout")));
        } catch (const TaskListError& e) {
            return Check::fail(fmt::format("{}: refusing to continue", e.what()), {{"source", nullptr}});
        }
        if (!found.cli_problem.empty()) {
            m_.warn(fmt::format("proxmox-backup-manager task list failed ({}); used {} instead", found.cli_problem,
                                found.source));
        }
        json running = json::array();
        std::vector<std::string> names;
        for (const auto& t : found.running) {
            running.push_back(t.to_json());
            names.push_back(describe_task(t));
        }
        running_tasks_ = running;
        json data{{"source", found.source}, {"running", running}};
        if (!names.empty()) {
            return Check::fail(fmt::format("{} PBS task(s) running: {}", names.size(), join(names, "; ")), data);
        }
        return Check::pass(fmt::format("no running PBS tasks (from {})", found.source), data);
    }

    // Package activity, waited for. pbs_upgrade's own detached worker (an earlier run's upgrade, still running
    // after a lost connection) is not foreign activity: it is named as such and waited for within its own
    // bound, and its apt/dpkg children are not reported as strangers. Foreign activity is waited for up to
    // apt_wait_timeout, counted from when our own upgrade (if any) ended.
    Check package_manager() {
        const auto proc = m_.str("proc_path");
        const auto locks = m_.list("lock_files");
        const auto wait_limit = std::chrono::seconds(m_.integer("apt_wait_timeout"));
        const auto poll = std::chrono::seconds(m_.integer("apt_poll_interval"));
        const UpgradeRunDir own_dir(m_.str("upgrade_state_dir"));
        const auto start = Clock::now();
        auto foreign_since = start;
        std::map<int, json> waited_for;
        std::optional<UpgradeRun> own;  // the earlier run's upgrade we saw running
        while (true) {
            std::optional<UpgradeRun> own_now;
            if (own_dir.worker_alive()) {
                try {
                    own_now = own_dir.read();
                } catch (const UpgradeRunError&) {
                }
                if (!own_now) own_now = UpgradeRun{};  // alive, state unreadable: still ours
                if (!own) own = own_now;
            }
            std::vector<int> ours;
            if (own_now && own_now->worker_pid > 0) {
                ours = descendants_among(list_processes(proc), own_now->worker_pid);
                ours.push_back(own_now->worker_pid);
            }
            auto is_ours = [&](int pid) { return std::find(ours.begin(), ours.end(), pid) != ours.end(); };
            auto processes = find_package_manager_processes(proc, static_cast<int>(::getpid()));
            processes.erase(std::remove_if(processes.begin(), processes.end(), [&](const ProcessInfo& p) { return is_ours(p.pid); }),
                            processes.end());
            auto holders = find_lock_holders(locks, proc);
            holders.erase(std::remove_if(holders.begin(), holders.end(), [&](const LockHolder& h) { return is_ours(h.pid); }),
                          holders.end());
            const auto now = Clock::now();
            const double waited = std::chrono::duration<double>(now - start).count();
            json own_json = own ? json{{"run_id", own->run_id}, {"started_at", utc_iso(own->started_at)},
                                       {"worker_pid", own->worker_pid}, {"unit", own->unit}, {"bound_s", own->bound_s}}
                                : json(nullptr);
            if (!own_now && processes.empty() && holders.empty()) {
                json data{{"waited_s", waited}, {"waited_for", json::array()}, {"own_upgrade", own_json}};
                for (auto& [pid, p] : waited_for) data["waited_for"].push_back(p);
                std::string detail = "no apt/dpkg process running, no lock held";
                if (own) {
                    detail = fmt::format("waited {:.0f} s for {} (an earlier run's upgrade, still running when this "
                                         "run began) to finish; the upgrade step reports its result",
                                         waited, own->describe());
                } else if (!waited_for.empty()) {
                    detail = fmt::format("waited {:.0f} s for {} apt/dpkg process(es) to exit", waited, waited_for.size());
                }
                return Check::pass(detail, data);
            }
            if (own_now) {
                // Ours is bounded on its own; we wait for it, and foreign activity's clock starts after it.
                foreign_since = now;
                const auto deadline = own_now->started_at > 0 ? own_now->deadline() + 180 : 0;
                const auto wall = static_cast<std::int64_t>(std::time(nullptr));
                if ((deadline > 0 && wall > deadline) ||
                    (deadline == 0 && now - start >= wait_limit + std::chrono::seconds(600))) {
                    return Check::fail(
                        fmt::format("{} (an earlier run's upgrade) is still running past its own bound of {} s: not "
                                    "starting another apt beside it. It is ended by its own timeouts; look at it "
                                    "with journalctl -u {} (or {}/worker.log), then rerun",
                                    own_now->describe(), own_now->bound_s, kUpgradeUnit, own_dir.path()),
                        {{"waited_s", waited}, {"own_upgrade", own_json}});
                }
            } else {
                for (const auto& p : processes) waited_for[p.pid] = p.to_json();
                for (const auto& h : holders) waited_for[h.pid] = h.to_json();
                if (now - foreign_since >= wait_limit) {
                    std::vector<std::string> parts;
                    json busy = json::array();
                    json held = json::array();
                    for (const auto& p : processes) {
                        parts.push_back(describe_process(p.pid, p.comm, p.cmdline));
                        busy.push_back(p.to_json());
                    }
                    for (const auto& h : holders) {
                        parts.push_back(fmt::format("{} held by {}", h.path, describe_process(h.pid, h.comm, h.cmdline)));
                        held.push_back(h.to_json());
                    }
                    return Check::fail(fmt::format("apt/dpkg still busy after waiting {:.0f} s: {}", waited, join(parts, "; ")),
                                       {{"waited_s", waited}, {"processes", busy}, {"lock_holders", held},
                                        {"own_upgrade", own_json}});
                }
            }
            const auto left = own_now ? Clock::duration(poll) : wait_limit - (now - foreign_since);
            std::this_thread::sleep_for(std::min<Clock::duration>(poll, left));
        }
    }

    Check dpkg_state() {
        const auto audit = audit_dpkg(seconds_of("command_timeout"));
        if (!audit.readable) return Check::fail(audit.problem);
        if (audit.consistent()) return Check::pass("dpkg --audit reports nothing to do");
        json data{{"audit", audit.findings}};
        if (!m_.boolean("repair_dpkg")) {
            return Check::fail(fmt::format("dpkg has unfinished work and repair_dpkg is false: {}",
                                           tail_lines(audit.findings, 5)),
                               data);
        }
        if (m_.check_mode()) {
            changed_ = true;
            return Check::pass("dpkg has unfinished work: would run dpkg --configure -a (check mode)", data);
        }
        const auto configure = configure_pending_packages(seconds_of("dpkg_configure_timeout"));
        changed_ = true;
        data["configure_rc"] = configure.rc;
        data["configure_stdout_tail"] = tail_lines(configure.out, 20);
        data["configure_stderr_tail"] = tail_lines(configure.err, 20);
        const auto after = audit_dpkg(seconds_of("command_timeout"));
        if (!after.readable) return Check::fail(after.problem, data);
        if (!after.consistent()) {
            return Check::fail(fmt::format("dpkg --configure -a (rc {}{}) left dpkg inconsistent: {}", configure.rc,
                                           configure.timed_out ? ", timed out" : "", tail_lines(after.findings, 5)),
                               data);
        }
        return Check::pass("repaired unfinished dpkg work with dpkg --configure -a", data);
    }

    json facts() {
        json f{{"kernel_release", kernel_release()}, {"checked_at", utc_now_iso()}};
        try {
            f["boot_id"] = read_boot_id(m_.str("proc_path"));
        } catch (const std::exception& e) {
            f["boot_id"] = nullptr;
            m_.warn(fmt::format("cannot read boot id: {}", e.what()));
        }
        const auto uptime = read_uptime(m_.str("proc_path"));
        f["uptime_s"] = uptime ? json(*uptime) : json(nullptr);
        if (!root_free_) {
            try {
                root_free_ = probe_disk_space(m_.str("root_path"));
            } catch (const std::exception&) {
            }
        }
        f["root_free_gb"] = root_free_ ? json(root_free_->avail_gib) : json(nullptr);
        f["reboot_required"] = file_exists(m_.str("reboot_required_file"));
        return f;
    }

    bool changed() const { return changed_; }
    const json& running_tasks_found() const { return running_tasks_; }

private:
    std::chrono::seconds seconds_of(const char* name) const { return std::chrono::seconds(m_.integer(name)); }

    Module& m_;
    bool changed_ = false;
    std::optional<DiskSpace> root_free_;
    json running_tasks_ = json::array();
};

json run_gate(Module& m) {
    const auto started = Clock::now();
    Gate gate(m);
    json checks = json::object();
    std::string failed_check;
    std::string failed_detail;
    for (const char* name : kCheckOrder) {
        if (!failed_check.empty()) {
            checks[name] = Check::skip(fmt::format("not run: {} failed", failed_check)).to_json();
            continue;
        }
        Check c;
        try {
            const std::string n = name;
            if (n == "tooling") c = gate.tooling();
            else if (n == "root_free_space") c = gate.root_free_space();
            else if (n == "running_tasks") c = gate.running_tasks();
            else if (n == "package_manager") c = gate.package_manager();
            else c = gate.dpkg_state();
        } catch (const std::exception& e) {
            c = Check::fail(fmt::format("error: {}", e.what()));  // an error never passes a gate
        }
        checks[name] = c.to_json();
        if (c.failed()) {
            failed_check = name;
            failed_detail = c.detail;
        }
    }
    json result{{"changed", gate.changed()},
                {"checks", checks},
                {"facts", gate.facts()},
                {"running_tasks", gate.running_tasks_found()},
                {"duration_s", std::chrono::duration<double>(Clock::now() - started).count()}};
    if (!failed_check.empty()) {
        result["failed_check"] = failed_check;
        throw ModuleFailure(fmt::format("PBS gate '{}' failed: {}", failed_check, failed_detail), result);
    }
    result["msg"] = m.check_mode() ? "all PBS gates passed (check mode: root free space not enforced)"
                                   : "all PBS gates passed";
    return result;
}

}  // namespace

int main(int argc, char** argv) { return pbs_patch::run_module(argc, argv, kSpec, run_gate); }
