// PVE task parsers (see pve_tasks.hpp for the sources of each shape).
#include "pbs_patch/pve_tasks.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <cctype>
#include <limits>

namespace pbs_patch {

using nlohmann::json;

namespace {

constexpr std::int64_t kUint32Max = 0xFFFFFFFF;
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

std::vector<std::string> split_colon(std::string_view text) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        const auto pos = text.find(':', start);
        if (pos == std::string_view::npos) {
            parts.emplace_back(text.substr(start));
            return parts;
        }
        parts.emplace_back(text.substr(start, pos - start));
        start = pos + 1;
    }
}

bool no_space_colon_slash(const std::string& s, bool allow_empty) {
    if (s.empty()) return allow_empty;
    for (char c : s) {
        if (c == ':' || c == '/' || std::isspace(static_cast<unsigned char>(c))) return false;
    }
    return true;
}

}  // namespace

std::optional<PveUpid> parse_pve_upid(std::string_view text) {
    // UPID: node : pid : pstart : starttime : type : id : user : (trailing colon -> empty last part)
    const auto parts = split_colon(text);
    if (parts.size() != 9 || parts[0] != "UPID" || !parts[8].empty()) return std::nullopt;
    PveUpid u;
    u.node = parts[1];
    if (!valid_pve_node_name(u.node)) return std::nullopt;
    // At most 9 hex digits each: the values fit an int64 exactly.
    const auto pid = parse_hex(parts[2], 8, 8);
    const auto pstart = parse_hex(parts[3], 8, 9);
    const auto starttime = parse_hex(parts[4], 8, 8);
    if (!pid || !pstart || !starttime) return std::nullopt;
    u.pid = static_cast<std::int64_t>(*pid);
    u.pstart = static_cast<std::int64_t>(*pstart);
    u.starttime = static_cast<std::int64_t>(*starttime);
    u.type = parts[5];
    u.id = parts[6];
    u.user = parts[7];
    if (!no_space_colon_slash(u.type, false) || !no_space_colon_slash(u.id, true) ||
        !no_space_colon_slash(u.user, false)) {
        return std::nullopt;
    }
    return u;
}

json PveTask::to_json() const {
    json j{{"upid", upid}, {"node", node}, {"type", type}, {"id", id},
           {"user", user}, {"starttime", starttime}, {"running", running()}};
    j["endtime"] = endtime ? json(*endtime) : json(nullptr);
    j["status"] = status.empty() ? json(nullptr) : json(status);
    return j;
}

std::vector<PveTask> parse_cluster_tasks(std::string_view text) {
    const std::string what = "pvesh get /cluster/tasks";
    std::vector<PveTask> tasks;
    for (const auto& entry : parse_pve_object_array(text, what)) {
        PveTask t;
        t.upid = pve_required_str(entry, "upid", what);
        const auto u = parse_pve_upid(t.upid);
        if (!u) throw PveJsonError(fmt::format("{}: '{}' is not a PVE UPID", what, t.upid));
        t.node = pve_str(entry, "node", what);
        if (t.node.empty()) t.node = u->node;
        t.type = pve_str(entry, "type", what);
        if (t.type.empty()) t.type = u->type;
        t.id = pve_str(entry, "id", what);
        t.user = pve_str(entry, "user", what);
        if (t.user.empty()) t.user = u->user;
        t.starttime = pve_int(entry, "starttime", 0, kUint32Max, what).value_or(u->starttime);
        if (t.node != u->node || t.type != u->type || t.starttime != u->starttime) {
            throw PveJsonError(fmt::format("{}: entry disagrees with its UPID {}: {}", what, t.upid, entry.dump()));
        }
        t.endtime = pve_int(entry, "endtime", 0, kUint32Max, what);
        t.status = pve_str(entry, "status", what);
        (void)pve_int(entry, "pid", 0, kUint32Max, what);
        (void)pve_int(entry, "pstart", 0, kInt64Max, what);
        tasks.push_back(std::move(t));
    }
    return tasks;
}

std::vector<std::string> parse_task_log(std::string_view text) {
    const std::string what = "task log";
    std::vector<std::string> lines;
    for (const auto& entry : parse_pve_object_array(text, what)) {
        (void)pve_int(entry, "n", 0, kInt64Max, what);
        const auto it = entry.find("t");
        if (it == entry.end() || !it->is_string()) {
            throw PveJsonError(fmt::format("{}: entry without a text 't': {}", what, entry.dump()));
        }
        lines.push_back(it->get<std::string>());
    }
    return lines;
}

std::vector<std::string> split_shell_words(std::string_view text) {
    std::vector<std::string> words;
    std::string current;
    bool in_word = false;
    bool quoted = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c == '\'') quoted = false;
            else current += c;
            continue;
        }
        if (c == '\'') {
            quoted = true;
            in_word = true;
        } else if (c == '\\' && i + 1 < text.size()) {
            current += text[++i];
            in_word = true;
        } else if (c == ' ' || c == '\t') {
            if (in_word) words.push_back(std::move(current));
            current.clear();
            in_word = false;
        } else {
            current += c;
            in_word = true;
        }
    }
    if (in_word) words.push_back(std::move(current));
    return words;
}

VzdumpJobLine find_vzdump_job_line(const std::vector<std::string>& log_lines) {
    static constexpr std::string_view marker = "starting new backup job: ";
    VzdumpJobLine out;
    for (const auto& line : log_lines) {
        const auto pos = line.find(marker);
        if (pos == std::string::npos) continue;
        out.found = true;
        out.cmdline = trim(std::string_view(line).substr(pos + marker.size()));
        const auto words = split_shell_words(out.cmdline);
        std::size_t i = (!words.empty() && words[0] == "vzdump") ? 1 : 0;
        for (; i < words.size() && !starts_with(words[i], "-"); ++i) out.vmids.push_back(words[i]);
        for (; i < words.size(); ++i) {
            std::string key = words[i];
            if (!starts_with(key, "-")) continue;
            key = key.substr(key.find_first_not_of('-'));
            std::string value;
            if (const auto eq = key.find('='); eq != std::string::npos) {
                value = key.substr(eq + 1);
                key = key.substr(0, eq);
            } else if (i + 1 < words.size() && !starts_with(words[i + 1], "--")) {
                value = words[++i];
            }
            if (key == "storage") out.storage = value;
            else if (key == "dumpdir") out.dumpdir = value;
            else if (key == "node") out.node = value;
            else if (key == "all") out.all = value.empty() || value == "1";
        }
        return out;
    }
    return out;
}

json VzdumpDefaults::to_json() const {
    return {{"storage", storage.empty() ? json(nullptr) : json(storage)},
            {"dumpdir", dumpdir.empty() ? json(nullptr) : json(dumpdir)}};
}

VzdumpDefaults parse_vzdump_defaults(std::string_view text) {
    const std::string what = "pvesh get /nodes/<node>/vzdump/defaults";
    const json data = parse_pve_json(text, what);
    if (!data.is_object()) throw PveJsonError(fmt::format("{}: expected a JSON object, got {}", what, data.type_name()));
    VzdumpDefaults d;
    d.storage = pve_str(data, "storage", what);
    d.dumpdir = pve_str(data, "dumpdir", what);
    if (d.storage.empty() && d.dumpdir.empty()) {
        throw PveJsonError(fmt::format("{}: neither 'storage' nor 'dumpdir' (PVE always answers one): {}", what,
                                       data.dump()));
    }
    return d;
}

}  // namespace pbs_patch
