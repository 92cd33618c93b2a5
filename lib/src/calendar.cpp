// proxmox-time -> systemd calendar normalisation and the `systemd-analyze calendar` output parser.
// proxmox-time (PBS, and PVE through Proxmox::RS::CalendarEvent) is "mostly compatible" with systemd; the
// differences that matter for computing the next start are handled here, the rest is refused by systemd.
#include "pbs_patch/calendar.hpp"

#include "pbs_patch/civil_time.hpp"

#include "pbs_patch/process.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>

namespace pbs_patch {
namespace {

constexpr std::array<const char*, 7> kShortDays = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
constexpr std::array<const char*, 7> kLongDays = {"monday", "tuesday", "wednesday", "thursday",
                                                  "friday", "saturday", "sunday"};
constexpr std::array<const char*, 10> kSpecialWords = {"minutely", "hourly",    "daily",        "weekly",
                                                       "monthly",  "yearly",    "annually",     "quarterly",
                                                       "semiannually", "semi-annually"};

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::vector<std::string> split(std::string_view text, char sep) {
    std::vector<std::string> parts;
    std::string item;
    for (char c : text) {
        if (c == sep) {
            parts.push_back(item);
            item.clear();
        } else {
            item += c;
        }
    }
    parts.push_back(item);
    return parts;
}

int weekday_index(const std::string& name, std::string_view event) {
    const std::string l = lower(name);
    for (std::size_t i = 0; i < kShortDays.size(); ++i) {
        if (l == kShortDays[i] || l == kLongDays[i]) return static_cast<int>(i);
    }
    throw CalendarError(fmt::format("calendar event '{}': '{}' is not a weekday (mon..sun)", event, name));
}

// "mon..fri,sun" with proxmox-time's wrap-around ranges ("fri..mon" = fri,sat,sun,mon) in systemd's form.
std::string normalize_weekdays(const std::string& token, std::string_view event) {
    std::vector<std::string> out;
    for (const auto& item : split(token, ',')) {
        const auto dots = item.find("..");
        if (dots == std::string::npos) {
            out.push_back(kShortDays[static_cast<std::size_t>(weekday_index(item, event))]);
            continue;
        }
        const int start = weekday_index(item.substr(0, dots), event);
        const int end = weekday_index(item.substr(dots + 2), event);
        if (start <= end) {
            out.push_back(fmt::format("{}..{}", kShortDays[static_cast<std::size_t>(start)],
                                      kShortDays[static_cast<std::size_t>(end)]));
        } else {
            for (int d = start; d <= 6; ++d) out.push_back(kShortDays[static_cast<std::size_t>(d)]);
            for (int d = 0; d <= end; ++d) out.push_back(kShortDays[static_cast<std::size_t>(d)]);
        }
    }
    return join(out, ",");
}

// proxmox-time reads `*/N` as "from the field's first value, every N"; systemd wants the start spelled out.
std::string normalize_field(const std::string& field, const char* first, std::string_view event, const char* what) {
    if (!starts_with(field, "*/")) return field;
    if (first == nullptr) {
        throw CalendarError(fmt::format("calendar event '{}': a repetition of {} ('{}') is not supported", event, what, field));
    }
    return std::string(first) + field.substr(1);
}

std::string normalize_date(const std::string& token, std::string_view event) {
    auto fields = split(token, '-');
    if (fields.size() == 3) {
        fields[0] = normalize_field(fields[0], nullptr, event, "years");
        fields[1] = normalize_field(fields[1], "1", event, "months");
        fields[2] = normalize_field(fields[2], "1", event, "days");
    } else if (fields.size() == 2) {
        fields[0] = normalize_field(fields[0], "1", event, "months");
        fields[1] = normalize_field(fields[1], "1", event, "days");
    }
    return join(fields, "-");
}

std::string normalize_time(const std::string& token, std::string_view event) {
    auto fields = split(token, ':');
    for (auto& f : fields) f = normalize_field(f, "0", event, "time");
    return join(fields, ":");
}

bool is_weekday_word(const std::string& token) {
    return !token.empty() && std::isalpha(static_cast<unsigned char>(token.front()));
}

CalendarElapse parse_elapse_value(const std::string& value, std::string_view line) {
    // "Sat 2026-11-28 01:00:00 CET" (the zone can be "UTC", "CEST", "+03", ...)
    const auto words = split_ws(value);
    if (words.size() < 3) throw CalendarError(fmt::format("unexpected systemd-analyze line: '{}'", line));
    const auto utc = parse_utc_datetime(words[1], words[2]);
    if (!utc) throw CalendarError(fmt::format("unexpected time in systemd-analyze line: '{}'", line));
    return {*utc, value};
}

}  // namespace

unsigned weekday_mask(std::string_view list) {
    unsigned mask = 0;
    const std::string text = trim(list);
    if (text.empty()) throw CalendarError("empty weekday list");
    for (const auto& item : split(text, ',')) {
        const auto dots = item.find("..");
        const int start = weekday_index(item.substr(0, dots), text);
        const int end = dots == std::string::npos ? start : weekday_index(item.substr(dots + 2), text);
        for (int d = start;; d = (d + 1) % 7) {
            mask |= 1U << static_cast<unsigned>(d);
            if (d == end) break;
        }
    }
    return mask;
}

std::string normalize_calendar_event(std::string_view event) {
    const std::string text = trim(event);
    if (text.empty()) throw CalendarError("empty calendar event");
    if (std::find(kSpecialWords.begin(), kSpecialWords.end(), text) != kSpecialWords.end()) return text;
    std::vector<std::string> out;
    bool first = true;
    for (const auto& token : split_ws(text)) {
        if (first && is_weekday_word(token)) {
            out.push_back(normalize_weekdays(token, text));
        } else if (token.find(':') != std::string::npos) {
            out.push_back(normalize_time(token, text));
        } else if (token.find('-') != std::string::npos) {
            out.push_back(normalize_date(token, text));
        } else {
            out.push_back(token);  // systemd judges it
        }
        first = false;
    }
    return join(out, " ");
}

std::optional<std::int64_t> parse_utc_datetime(std::string_view date, std::string_view time) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    char tail = 0;
    const std::string dt = fmt::format("{} {}", date, time);
    if (std::sscanf(dt.c_str(), "%4d-%2d-%2d %2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &tail) != 6) return std::nullopt;
    const CivilTime t{y, mo, d, h, mi, s};
    if (!t.in_range()) return std::nullopt;
    return utc_to_epoch(t);
}

std::vector<CalendarAnalysis> parse_systemd_calendar_output(std::string_view text) {
    std::vector<CalendarAnalysis> out;
    auto current = [&](std::string_view line) -> CalendarAnalysis& {
        if (out.empty()) throw CalendarError(fmt::format("systemd-analyze output starts with '{}'", line));
        return out.back();
    };
    for (const auto& raw : split_lines(text)) {
        const std::string line = trim(raw);
        if (line.empty()) continue;
        const auto colon = line.find(": ");
        if (colon == std::string::npos) throw CalendarError(fmt::format("unexpected systemd-analyze line: '{}'", line));
        const std::string key = line.substr(0, colon);
        const std::string value = trim(std::string_view(line).substr(colon + 2));
        if (key == "Original form") {
            out.push_back(CalendarAnalysis{value, "", {}});
        } else if (key == "Normalized form") {
            current(line).normalized = value;
        } else if (key == "Next elapse" || starts_with(key, "Iter. #") || starts_with(key, "Iteration #")) {
            // "Iter. #2" up to systemd 252 (Debian 12), "Iteration #2" in systemd 257 (Debian 13)
            auto& a = current(line);
            if (value == "never") continue;
            a.elapses.push_back(parse_elapse_value(value, line));
        } else if (key == "(in UTC)") {
            auto& a = current(line);
            if (a.elapses.empty()) throw CalendarError(fmt::format("'(in UTC)' before any elapse: '{}'", line));
            a.elapses.back().utc = parse_elapse_value(value, line).utc;
        } else if (key == "From now") {
            continue;  // relative to the real clock, not to --base-time
        } else {
            throw CalendarError(fmt::format("unexpected systemd-analyze line: '{}'", line));
        }
    }
    return out;
}

CalendarAnalysis next_elapses(const std::string& event, std::int64_t base_utc, const CalendarProbeOptions& options) {
    const std::string normalized = normalize_calendar_event(event);
    RunOptions run;
    run.timeout = options.timeout;
    if (options.timezone && !options.timezone->empty()) run.env["TZ"] = *options.timezone;
    const auto r = run_process({options.systemd_analyze, "calendar", fmt::format("--iterations={}", options.iterations),
                                fmt::format("--base-time=@{}", base_utc), normalized},
                               run);
    if (!r.started) {
        throw CalendarError(fmt::format("cannot run {}: {}", options.systemd_analyze, r.error));
    }
    if (r.timed_out) {
        throw CalendarError(fmt::format("{} calendar '{}' timed out", options.systemd_analyze, normalized));
    }
    if (r.rc != 0) {
        const std::string why = trim(tail_lines(trim(r.err + r.out), 2));
        throw CalendarError(fmt::format("systemd cannot evaluate calendar event '{}'{}: {}", event,
                                        normalized == event ? std::string{} : fmt::format(" (as '{}')", normalized),
                                        why.empty() ? fmt::format("rc {}", r.rc) : why));
    }
    auto parsed = parse_systemd_calendar_output(r.out);
    if (parsed.size() != 1) {
        throw CalendarError(fmt::format("systemd-analyze printed {} results for one calendar event", parsed.size()));
    }
    return parsed.front();
}

}  // namespace pbs_patch
