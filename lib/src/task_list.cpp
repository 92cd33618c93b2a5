// Parsers for PBS task state; shapes from pbs-api-types (TaskListItem) and proxmox-rest-server.
#include "pbs_patch/task_list.hpp"

#include "pbs_patch/json_number.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <cctype>
#include <limits>

namespace pbs_patch {

using nlohmann::json;

namespace {

TaskItem task_from_upid(const std::string& text, const Upid& upid) {
    TaskItem task;
    task.upid = text;
    task.node = upid.node;
    task.pid = upid.pid;
    task.pstart = upid.pstart;
    task.starttime = upid.starttime;
    task.worker_type = upid.worker_type;
    if (!upid.worker_id.empty()) task.worker_id = upid.worker_id;
    task.user = upid.authid;
    return task;
}

std::string required_string(const json& item, const char* key, std::size_t index) {
    const auto it = item.find(key);
    if (it == item.end() || it->is_null()) {
        throw TaskListError(fmt::format("task list entry {} has no '{}'", index, key));
    }
    if (!it->is_string()) {
        throw TaskListError(fmt::format("task list entry {}: '{}' has type {}", index, key, it->type_name()));
    }
    return it->get<std::string>();
}

// An integer field (pbs-api-types TaskListItem: pid, pstart, starttime, endtime), range-checked: out of range
// is malformed output, like a missing key.
std::optional<std::int64_t> integer_field(const json& item, const char* key, std::size_t index, bool required,
                                          std::int64_t min, std::int64_t max) {
    const auto it = item.find(key);
    if (it == item.end() || it->is_null()) {
        if (required) throw TaskListError(fmt::format("task list entry {} has no '{}'", index, key));
        return std::nullopt;
    }
    if (auto n = json_integer(*it, min, max)) return n;
    throw TaskListError(fmt::format("task list entry {}: '{}' {}", index, key, json_integer_problem(*it, min, max)));
}

constexpr std::int64_t kMaxI64 = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMaxU32 = 0xFFFFFFFF;

}  // namespace

std::string systemd_unescape(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '-') {
            out += '/';
        } else if (text[i] == '\\' && i + 3 < text.size() && text[i + 1] == 'x') {
            if (auto byte = parse_hex(text.substr(i + 2, 2), 2, 2)) {
                out += static_cast<char>(*byte);
                i += 3;
            } else {
                out += text[i];
            }
        } else {
            out += text[i];
        }
    }
    return out;
}

std::optional<Upid> parse_upid(std::string_view text) {
    // The worker id is escaped, so it holds no ':'; the authid (user@realm!token) holds none either.
    if (!starts_with(text, "UPID:") || text.empty() || text.back() != ':') return std::nullopt;
    std::vector<std::string_view> fields;
    std::size_t start = 5;
    while (start < text.size()) {
        const auto end = text.find(':', start);
        fields.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    if (fields.size() != 8) return std::nullopt;
    Upid upid;
    upid.node = std::string(fields[0]);
    const auto pid = parse_hex(fields[1], 8, 8);
    const auto pstart = parse_hex(fields[2], 8, 9);
    const auto task_id = parse_hex(fields[3], 8, 16);
    const auto starttime = parse_hex(fields[4], 8, 8);
    if (upid.node.empty() || !pid || !pstart || !task_id || !starttime || fields[5].empty() || fields[7].empty()) {
        return std::nullopt;
    }
    upid.pid = static_cast<std::int64_t>(*pid);
    upid.pstart = static_cast<std::int64_t>(*pstart);
    upid.task_id = *task_id;
    upid.starttime = static_cast<std::int64_t>(*starttime);
    upid.worker_type = std::string(fields[5]);
    upid.worker_id = systemd_unescape(fields[6]);
    upid.authid = std::string(fields[7]);
    return upid;
}

json TaskItem::to_json() const {
    json j{{"upid", upid},           {"node", node},           {"pid", pid},
           {"pstart", pstart},       {"starttime", starttime}, {"worker_type", worker_type},
           {"worker_id", nullptr},   {"user", user}};
    if (worker_id) j["worker_id"] = *worker_id;
    if (endtime) j["endtime"] = *endtime;
    if (status) j["status"] = *status;
    return j;
}

TaskOutcome task_outcome(const TaskItem& task) {
    if (task.running()) return TaskOutcome::Running;
    const std::string status = task.status.value_or("unknown");
    if (status == "OK") return TaskOutcome::Ok;
    if (starts_with(status, "WARNINGS")) return TaskOutcome::Warnings;
    return TaskOutcome::Error;  // "unknown" and error text alike: the task did not end well
}

std::string to_string(TaskOutcome outcome) {
    switch (outcome) {
        case TaskOutcome::Running: return "running";
        case TaskOutcome::Ok: return "ok";
        case TaskOutcome::Warnings: return "warnings";
        case TaskOutcome::Error: return "error";
    }
    return "error";
}

std::vector<TaskItem> parse_task_list_json(std::string_view text) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        throw TaskListError(fmt::format("task list output is not JSON: {}", e.what()));
    }
    // Some callers pass the API's envelope ({"data": [...]}); accept it too.
    if (doc.is_object() && doc.contains("data")) doc = doc["data"];
    if (!doc.is_array()) throw TaskListError(fmt::format("task list output is a JSON {}, not an array", doc.type_name()));
    std::vector<TaskItem> tasks;
    std::size_t index = 0;
    for (const auto& item : doc) {
        if (!item.is_object()) throw TaskListError(fmt::format("task list entry {} is not an object", index));
        TaskItem task;
        task.upid = required_string(item, "upid", index);
        task.starttime = *integer_field(item, "starttime", index, true, 0, kMaxI64);
        task.worker_type = required_string(item, "worker_type", index);
        task.user = required_string(item, "user", index);
        if (auto it = item.find("node"); it != item.end() && it->is_string()) task.node = it->get<std::string>();
        task.pid = integer_field(item, "pid", index, false, 0, kMaxU32).value_or(0);
        task.pstart = integer_field(item, "pstart", index, false, 0, kMaxI64).value_or(0);
        if (auto it = item.find("worker_id"); it != item.end() && it->is_string()) task.worker_id = it->get<std::string>();
        task.endtime = integer_field(item, "endtime", index, false, 0, kMaxI64);
        if (auto it = item.find("status"); it != item.end() && it->is_string()) task.status = it->get<std::string>();
        tasks.push_back(std::move(task));
        ++index;
    }
    return tasks;
}

std::vector<TaskItem> parse_active_tasks(std::string_view text) {
    std::vector<TaskItem> tasks;
    std::size_t line_no = 0;
    for (const auto& raw : split_lines(text)) {
        ++line_no;
        const std::string line = trim(raw);
        if (line.empty()) continue;
        const auto space = line.find(' ');
        const std::string upid_text = line.substr(0, space);
        const auto upid = parse_upid(upid_text);
        if (!upid) throw TaskListError(fmt::format("tasks/active line {} is not a task: {}", line_no, line));
        TaskItem task = task_from_upid(upid_text, *upid);
        if (space != std::string::npos) {
            const std::string rest = trim(line.substr(space + 1));
            const auto space2 = rest.find(' ');
            const auto endtime = parse_hex(rest.substr(0, space2), 1, 16);
            if (!endtime) throw TaskListError(fmt::format("tasks/active line {} has a bad end time: {}", line_no, line));
            task.endtime = static_cast<std::int64_t>(*endtime);
            task.status = space2 == std::string::npos ? std::string("unknown") : trim(rest.substr(space2 + 1));
        }
        tasks.push_back(std::move(task));
    }
    return tasks;
}

}  // namespace pbs_patch
