// Job list parsers: the JSON shapes of PBS's config API (pbs-api-types SyncJobConfig, VerificationJobConfig,
// PruneJobConfig, TapeBackupJobConfig, DataStoreConfig) and of PVE's /cluster/backup and /storage.
#include "pbs_patch/pbs_jobs.hpp"

#include "pbs_patch/params.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>

namespace pbs_patch {
namespace {

using nlohmann::json;

json parse_array(std::string_view text, const char* what) {
    json data;
    try {
        data = json::parse(text);
    } catch (const json::parse_error& e) {
        throw JobListError(fmt::format("{}: not JSON ({}): {}", what, e.what(), tail_lines(trim(text), 2)));
    }
    // `proxmox-backup-manager ... --output-format json` prints the array; tolerate the API's {"data": [...]}.
    if (data.is_object() && data.contains("data")) data = data["data"];
    if (!data.is_array()) throw JobListError(fmt::format("{}: expected a JSON array, got {}", what, data.type_name()));
    for (const auto& entry : data) {
        if (!entry.is_object()) throw JobListError(fmt::format("{}: entry {} is not an object", what, entry.dump()));
    }
    return data;
}

std::string required_str(const json& entry, const char* key, const char* what) {
    const auto it = entry.find(key);
    if (it == entry.end() || !it->is_string() || it->get<std::string>().empty()) {
        throw JobListError(fmt::format("{}: entry without '{}': {}", what, key, entry.dump()));
    }
    return it->get<std::string>();
}

std::string optional_str(const json& entry, const char* key) {
    const auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) return {};
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
}

// PVE writes 0/1 (numbers or strings), PBS booleans; absent means `fallback`.
bool flag(const json& entry, const char* key, bool fallback) {
    const auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) return fallback;
    if (it->is_boolean()) return it->get<bool>();
    if (it->is_number()) return it->get<double>() != 0.0;
    if (it->is_string()) return parse_ansible_bool(it->get<std::string>()).value_or(fallback);
    return fallback;
}

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

// The common shape: id + schedule (optional: a job without one only runs by hand).
JobList parse_jobs(std::string_view text, const char* kind, const char* source,
                   const std::function<std::string(const json&)>& describe) {
    JobList out;
    for (const auto& entry : parse_array(text, source)) {
        const std::string id = required_str(entry, "id", source);
        const std::string schedule = trim(optional_str(entry, "schedule"));
        if (flag(entry, "disable", false)) {
            out.ignored.push_back({kind, id, "disabled"});
        } else if (schedule.empty()) {
            out.ignored.push_back({kind, id, "no schedule (runs only when started by hand)"});
        } else {
            out.jobs.push_back({kind, id, schedule, source, describe(entry), std::nullopt});
        }
    }
    return out;
}

std::string with_ns(const json& entry, const char* store_key, const char* ns_key) {
    const std::string store = optional_str(entry, store_key);
    const std::string ns = optional_str(entry, ns_key);
    return ns.empty() ? store : fmt::format("{} (ns {})", store, ns);
}

}  // namespace

json ScheduledJob::to_json() const {
    json j{{"kind", kind}, {"id", id}, {"schedule", schedule}, {"source", source}, {"detail", detail}};
    if (timezone) j["timezone"] = *timezone;
    return j;
}

void JobList::append(JobList other) {
    for (auto& j : other.jobs) jobs.push_back(std::move(j));
    for (auto& i : other.ignored) ignored.push_back(std::move(i));
}

JobList parse_sync_jobs(std::string_view text) {
    return parse_jobs(text, "sync", "proxmox-backup-manager sync-job list", [](const json& e) {
        const std::string store = with_ns(e, "store", "ns");
        const std::string remote = optional_str(e, "remote");
        const std::string remote_store = with_ns(e, "remote-store", "remote-ns");
        const std::string from = remote.empty() ? remote_store : fmt::format("{}:{}", remote, remote_store);
        if (optional_str(e, "sync-direction") == "push") return fmt::format("{} -> {}", store, from);
        return fmt::format("{} <- {}", store, from);
    });
}

JobList parse_verify_jobs(std::string_view text) {
    return parse_jobs(text, "verify", "proxmox-backup-manager verify-job list",
                      [](const json& e) { return fmt::format("verify {}", with_ns(e, "store", "ns")); });
}

JobList parse_prune_jobs(std::string_view text) {
    return parse_jobs(text, "prune", "proxmox-backup-manager prune-job list",
                      [](const json& e) { return fmt::format("prune {}", with_ns(e, "store", "ns")); });
}

JobList parse_tape_backup_jobs(std::string_view text) {
    return parse_jobs(text, "tape_backup", "proxmox-tape backup-job list", [](const json& e) {
        return fmt::format("{} to pool {} on drive {}", with_ns(e, "store", "ns"), optional_str(e, "pool"),
                           optional_str(e, "drive"));
    });
}

JobList parse_datastore_schedules(std::string_view text) {
    const char* source = "proxmox-backup-manager datastore list";
    JobList out;
    for (const auto& entry : parse_array(text, source)) {
        const std::string name = required_str(entry, "name", source);
        const std::string gc = trim(optional_str(entry, "gc-schedule"));
        if (gc.empty()) {
            out.ignored.push_back({"garbage_collection", name, "no gc-schedule"});
        } else {
            out.jobs.push_back({"garbage_collection", name, gc, source, fmt::format("garbage collection of {}", name),
                                std::nullopt});
        }
        // Datastores configured before prune jobs existed (PBS < 2.2) still carry a prune-schedule.
        const std::string prune = trim(optional_str(entry, "prune-schedule"));
        if (!prune.empty()) {
            out.jobs.push_back({"prune", name, prune, source, fmt::format("prune-schedule of datastore {}", name),
                                std::nullopt});
        }
    }
    return out;
}

std::map<std::string, std::string> pbs_target_storages(const json& storages, const std::vector<std::string>& pbs_servers,
                                                       const std::vector<std::string>& pbs_datastores) {
    if (!storages.is_array()) throw JobListError(fmt::format("pvesh get /storage: expected a list, got {}", storages.type_name()));
    std::vector<std::string> servers;
    for (const auto& s : pbs_servers) servers.push_back(lower(trim(s)));
    std::map<std::string, std::string> targets;  // storage id -> "server:datastore"
    for (const auto& st : storages) {
        if (!st.is_object()) throw JobListError(fmt::format("pvesh get /storage: entry {} is not an object", st.dump()));
        if (optional_str(st, "type") != "pbs") continue;
        const std::string id = required_str(st, "storage", "pvesh get /storage");
        const std::string server = optional_str(st, "server");
        const std::string datastore = optional_str(st, "datastore");
        if (!servers.empty() && std::find(servers.begin(), servers.end(), lower(server)) == servers.end()) continue;
        if (!pbs_datastores.empty() &&
            std::find(pbs_datastores.begin(), pbs_datastores.end(), datastore) == pbs_datastores.end()) {
            continue;
        }
        targets[id] = fmt::format("{}:{}", server, datastore);
    }
    return targets;
}

JobList select_pve_backup_jobs(const json& cluster_backup, const json& storages,
                               const std::vector<std::string>& pbs_servers,
                               const std::vector<std::string>& pbs_datastores) {
    const char* source = "pvesh get /cluster/backup";
    if (!cluster_backup.is_array()) throw JobListError(fmt::format("{}: expected a list, got {}", source, cluster_backup.type_name()));
    const auto targets = pbs_target_storages(storages, pbs_servers, pbs_datastores);
    JobList out;
    for (const auto& entry : cluster_backup) {
        if (!entry.is_object()) throw JobListError(fmt::format("{}: entry {} is not an object", source, entry.dump()));
        if (const auto type = optional_str(entry, "type"); !type.empty() && type != "vzdump") continue;
        const std::string id = required_str(entry, "id", source);
        const std::string storage = optional_str(entry, "storage");
        const std::string storage_from = optional_str(entry, "storage_from");
        const std::string from_text = storage_from.empty() ? std::string() : fmt::format(", {}", storage_from);
        const auto target = targets.find(storage);
        if (target == targets.end()) {
            std::string why;
            if (!storage.empty()) why = fmt::format("targets storage '{}'{}, not this PBS", storage, from_text);
            else if (!optional_str(entry, "dumpdir").empty()) why = fmt::format("dumps to directory {}", optional_str(entry, "dumpdir"));
            else if (!storage_from.empty()) why = fmt::format("no storage: {}", storage_from);
            else why = "no storage set (vzdump's default storage, not resolved)";
            out.ignored.push_back({"vzdump", id, why});
            continue;
        }
        if (!flag(entry, "enabled", true)) {
            out.ignored.push_back({"vzdump", id, "disabled (enabled: 0)"});
            continue;
        }
        std::string schedule = trim(optional_str(entry, "schedule"));
        if (schedule.empty()) {
            const std::string starttime = trim(optional_str(entry, "starttime"));
            if (starttime.empty()) {
                out.ignored.push_back({"vzdump", id, "no schedule"});
                continue;
            }
            std::string dow = trim(optional_str(entry, "dow"));
            schedule = dow.empty() ? starttime : fmt::format("{} {}", dow, starttime);
        }
        std::string what = flag(entry, "all", false) ? std::string("all guests")
                               : fmt::format("guests {}", optional_str(entry, "vmid"));
        const std::string node = optional_str(entry, "node");
        if (!node.empty()) what += fmt::format(" on node {}", node);
        out.jobs.push_back({"vzdump", id, schedule, "pvesh get /cluster/backup",
                            fmt::format("vzdump of {} to storage {} ({}){}", what, storage, target->second, from_text),
                            std::nullopt});
    }
    return out;
}

JobList parse_extra_jobs(const json& jobs) {
    const char* source = "jobs parameter";
    JobList out;
    if (jobs.is_null()) return out;
    if (!jobs.is_array()) throw JobListError(fmt::format("{}: expected a list, got {}", source, jobs.type_name()));
    for (const auto& entry : jobs) {
        if (!entry.is_object()) throw JobListError(fmt::format("{}: entry {} is not a dict", source, entry.dump()));
        for (const auto& [key, value] : entry.items()) {
            static const std::vector<std::string> known = {"id", "schedule", "kind", "timezone", "detail", "enabled"};
            if (std::find(known.begin(), known.end(), key) == known.end()) {
                throw JobListError(fmt::format("{}: unknown key '{}' in {} (accepted: {})", source, key, entry.dump(),
                                               join(known, ", ")));
            }
        }
        const std::string id = required_str(entry, "id", source);
        const std::string schedule = trim(required_str(entry, "schedule", source));
        std::string kind = optional_str(entry, "kind");
        if (kind.empty()) kind = "job";
        if (!flag(entry, "enabled", true)) {
            out.ignored.push_back({kind, id, "disabled (enabled: false)"});
            continue;
        }
        const std::string tz = optional_str(entry, "timezone");
        out.jobs.push_back({kind, id, schedule, source, optional_str(entry, "detail"),
                            tz.empty() ? std::nullopt : std::optional<std::string>(tz)});
    }
    return out;
}

}  // namespace pbs_patch
