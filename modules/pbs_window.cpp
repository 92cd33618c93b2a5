// pbs_window: refuses to start maintenance when a backup-related job is due inside the maintenance window,
// the window overlaps an operator blackout, or it would end after the deadline. PBS jobs are read on the
// host; PVE vzdump jobs come in as parameters (gathered on the PVE node). Next starts come from systemd.
#include "pbs_patch/calendar.hpp"
#include "pbs_patch/module.hpp"
#include "pbs_patch/pbs_jobs.hpp"
#include "pbs_patch/process.hpp"
#include "pbs_patch/text.hpp"
#include "pbs_patch/time_zone.hpp"
#include "pbs_patch/window.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>

namespace {

using nlohmann::json;
using namespace pbs_patch;

const ParamSpecs kSpec = {
    {.name = "window_minutes", .type = ParamType::Int, .default_value = 120, .min_value = 1},
    {.name = "deadline", .type = ParamType::Str},
    {.name = "blackouts", .type = ParamType::List, .default_value = json::array()},
    {.name = "jobs", .type = ParamType::List, .default_value = json::array(), .elements = ParamType::Dict},
    {.name = "ignore_jobs", .type = ParamType::List, .default_value = json::array()},
    {.name = "gather_pbs_jobs", .type = ParamType::Bool, .default_value = true},
    {.name = "pbm_path", .type = ParamType::Path, .default_value = "/usr/sbin/proxmox-backup-manager"},
    {.name = "tape_path", .type = ParamType::Path, .default_value = "/usr/sbin/proxmox-tape"},
    {.name = "pve_backup_jobs", .type = ParamType::List, .elements = ParamType::Dict},
    {.name = "pve_storage", .type = ParamType::List, .elements = ParamType::Dict},
    {.name = "pbs_servers", .type = ParamType::List, .default_value = json::array()},
    {.name = "pbs_datastores", .type = ParamType::List, .default_value = json::array()},
    {.name = "pve_timezone", .type = ParamType::Str},
    {.name = "systemd_analyze_path", .type = ParamType::Path, .default_value = "/usr/bin/systemd-analyze"},
    {.name = "command_timeout", .type = ParamType::Int, .default_value = 30, .min_value = 1},
    {.name = "now", .type = ParamType::Str},
    {.name = "zoneinfo_path", .type = ParamType::Path, .default_value = "/usr/share/zoneinfo"},
};

RunOptions timeout_of(const Module& m) {
    RunOptions options;
    options.timeout = std::chrono::seconds(m.integer("command_timeout"));
    return options;
}

// One PBS listing; any failure of a present command fails closed.
std::string list_output(const Module& m, const std::vector<std::string>& argv, const char* what) {
    const auto r = run_process(argv, timeout_of(m));
    if (r.rc == 0) return r.out;
    const std::string why = r.timed_out ? fmt::format("timed out after {} s", m.integer("command_timeout"))
                                        : fmt::format("rc {}: {}", r.rc, tail_lines(trim(r.err + r.error), 3));
    throw ModuleFailure(fmt::format("cannot list {} ({} {}): {}; refusing, since a job could be due", what, argv[0],
                                    join(std::vector<std::string>(argv.begin() + 1, argv.end()), " "), why),
                        {{"conflicts", json::array()}});
}

JobList gather_pbs(const Module& m, json& sources) {
    JobList all;
    const std::string pbm = m.str("pbm_path");
    if (find_executable(pbm).empty()) {
        throw ModuleFailure(fmt::format("{} not found: not a Proxmox Backup Server host (gather_pbs_jobs: false checks only "
                                        "the jobs passed in)",
                                        pbm));
    }
    struct Listing {
        const char* name;
        std::vector<std::string> args;
        JobList (*parse)(std::string_view);
    };
    const Listing listings[] = {
        {"sync jobs", {"sync-job", "list"}, parse_sync_jobs},
        {"verify jobs", {"verify-job", "list"}, parse_verify_jobs},
        {"prune jobs", {"prune-job", "list"}, parse_prune_jobs},
        {"datastores", {"datastore", "list"}, parse_datastore_schedules},
    };
    for (const auto& l : listings) {
        std::vector<std::string> argv{pbm};
        argv.insert(argv.end(), l.args.begin(), l.args.end());
        argv.insert(argv.end(), {"--output-format", "json"});
        try {
            auto jobs = l.parse(list_output(m, argv, l.name));
            sources[l.name] = fmt::format("{} scheduled, {} without a schedule", jobs.jobs.size(), jobs.ignored.size());
            all.append(std::move(jobs));
        } catch (const JobListError& e) {
            throw ModuleFailure(fmt::format("cannot read PBS {}: {}; refusing, since a job could be due", l.name, e.what()));
        }
    }
    const std::string tape = m.str("tape_path");
    if (find_executable(tape).empty()) {
        sources["tape backup jobs"] = fmt::format("{} not installed: no tape jobs", tape);
    } else {
        try {
            auto jobs = parse_tape_backup_jobs(
                list_output(m, {tape, "backup-job", "list", "--output-format", "json"}, "tape backup jobs"));
            sources["tape backup jobs"] = fmt::format("{} scheduled, {} without a schedule", jobs.jobs.size(),
                                                      jobs.ignored.size());
            all.append(std::move(jobs));
        } catch (const JobListError& e) {
            throw ModuleFailure(fmt::format("cannot read PBS tape backup jobs: {}; refusing", e.what()));
        }
    }
    return all;
}

bool is_ignored(const ScheduledJob& job, const std::vector<std::string>& ignore) {
    return std::any_of(ignore.begin(), ignore.end(),
                       [&](const std::string& i) { return i == job.key() || i == job.id; });
}

json run_window(Module& m) {
    const auto started = std::chrono::steady_clock::now();
    WindowRequest request;
    request.window_s = m.integer("window_minutes") * 60;
    try {
        request.now = m.str("now").empty() ? static_cast<std::int64_t>(std::time(nullptr)) : parse_iso8601(m.str("now"));
        if (!m.str("deadline").empty()) {
            request.deadline_text = m.str("deadline");
            request.deadline = parse_iso8601(request.deadline_text);
        }
    } catch (const WindowError& e) {
        throw ModuleFailure(e.what());
    }
    std::vector<Blackout> blackouts;
    for (const auto& text : m.list("blackouts")) {
        try {
            blackouts.push_back(parse_blackout(text));
        } catch (const WindowError& e) {
            throw ModuleFailure(e.what());
        }
    }

    // An unknown zone would silently be UTC to systemd-analyze and glibc: refuse it before anything else.
    const std::string zoneinfo = m.str("zoneinfo_path");
    try {
        if (!m.str("pve_timezone").empty()) check_time_zone(m.str("pve_timezone"), "pve_timezone", zoneinfo);
    } catch (const TimeZoneError& e) {
        throw ModuleFailure(e.what());
    }

    json sources = json::object();
    JobList all;
    try {
        all = parse_extra_jobs(m.params().at("jobs"));
        if (!all.jobs.empty() || !all.ignored.empty()) sources["jobs parameter"] = fmt::format("{} job(s)", all.jobs.size());
        const auto& pve_jobs = m.params().at("pve_backup_jobs");
        const auto& pve_storage = m.params().at("pve_storage");
        if (!pve_jobs.is_null()) {
            if (pve_storage.is_null()) {
                throw ModuleFailure("pve_backup_jobs needs pve_storage (pvesh get /storage) to tell which jobs target this PBS");
            }
            auto pve = select_pve_backup_jobs(pve_jobs, pve_storage, m.list("pbs_servers"), m.list("pbs_datastores"));
            const std::string tz = m.str("pve_timezone");
            for (auto& j : pve.jobs) {
                if (!tz.empty()) j.timezone = tz;
            }
            sources["pvesh get /cluster/backup"] = fmt::format("{} job(s) target this PBS, {} other", pve.jobs.size(),
                                                               pve.ignored.size());
            all.append(std::move(pve));
        }
    } catch (const JobListError& e) {
        throw ModuleFailure(e.what());
    }
    if (m.boolean("gather_pbs_jobs")) all.append(gather_pbs(m, sources));
    for (const auto& job : all.jobs) {
        if (!job.timezone || job.timezone->empty()) continue;
        try {
            check_time_zone(*job.timezone, fmt::format("{} job '{}'", job.kind, job.id), zoneinfo);
        } catch (const TimeZoneError& e) {
            throw ModuleFailure(e.what());
        }
    }

    const auto ignore = m.list("ignore_jobs");
    std::vector<JobStart> starts;
    json ignored = json::array();
    for (const auto& i : all.ignored) ignored.push_back(i.to_json());
    std::vector<std::string> errors;
    CalendarProbeOptions probe;
    probe.systemd_analyze = m.str("systemd_analyze_path");
    probe.timeout = std::chrono::seconds(m.integer("command_timeout"));
    for (const auto& job : all.jobs) {
        if (is_ignored(job, ignore)) {
            ignored.push_back(IgnoredJob{job.kind, job.id, "in ignore_jobs"}.to_json());
            continue;
        }
        probe.timezone = job.timezone;
        try {
            const auto a = next_elapses(job.schedule, request.now - request.grace_s - 1, probe);
            JobStart s{job, std::nullopt, ""};
            if (!a.elapses.empty()) {
                s.next_utc = a.elapses.front().utc;
                s.next_local = a.elapses.front().local_text;
            }
            starts.push_back(std::move(s));
        } catch (const CalendarError& e) {
            errors.push_back(fmt::format("{} job '{}': {}", job.kind, job.id, e.what()));
        }
    }
    std::stable_sort(starts.begin(), starts.end(), [](const JobStart& a, const JobStart& b) {
        return a.next_utc.value_or(INT64_MAX) < b.next_utc.value_or(INT64_MAX);
    });

    const auto conflicts = find_conflicts(request, starts, blackouts);
    const std::int64_t end = request.now + request.window_s;
    json result{{"changed", false},
                {"window", {{"start", format_utc(request.now)},
                            {"start_local", format_local(request.now)},
                            {"end", format_utc(end)},
                            {"end_local", format_local(end)},
                            {"minutes", m.integer("window_minutes")}}},
                {"deadline", request.deadline ? json{{"at", format_utc(*request.deadline)},
                                                     {"at_local", format_local(*request.deadline)}}
                                              : json(nullptr)},
                {"blackouts", m.list("blackouts")},
                {"jobs", json::array()},
                {"ignored_jobs", ignored},
                {"sources", sources},
                {"conflicts", json::array()},
                {"next_job", nullptr}};
    for (const auto& s : starts) {
        result["jobs"].push_back(s.to_json(request.now));
        if (result["next_job"].is_null() && s.next_utc && *s.next_utc > end) result["next_job"] = s.to_json(request.now);
    }
    for (const auto& c : conflicts) result["conflicts"].push_back(c.to_json());
    result["duration_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!errors.empty()) {
        throw ModuleFailure(fmt::format("cannot tell when {} job(s) start, refusing: {}", errors.size(), join(errors, "; ")),
                            result);
    }
    if (!conflicts.empty()) {
        std::vector<std::string> messages;
        for (const auto& c : conflicts) messages.push_back(c.message);
        throw ModuleFailure(fmt::format("not starting maintenance now ({} to {}): {}", format_local(request.now),
                                        format_local(end), join(messages, "; ")),
                            result);
    }
    result["msg"] = fmt::format("the {}-minute maintenance window {} to {} is free: {} scheduled job(s) checked, {} "
                                "blackout(s), deadline {}",
                                m.integer("window_minutes"), format_local(request.now), format_local(end), starts.size(),
                                blackouts.size(),
                                request.deadline ? format_local(*request.deadline) : std::string("none"));
    return result;
}

}  // namespace

int main(int argc, char** argv) { return pbs_patch::run_module(argc, argv, kSpec, run_window); }
