// Window, blackout and deadline logic. Local times go through localtime_r/mktime, so a test (or a host)
// chooses the zone with TZ; absolute instants are UTC seconds throughout.
#include "pbs_patch/window.hpp"

#include "pbs_patch/civil_time.hpp"

#include "pbs_patch/calendar.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

namespace pbs_patch {
namespace {

using nlohmann::json;

std::tm local_tm(std::int64_t t) {
    const auto tt = static_cast<std::time_t>(t);
    std::tm tm{};
    ::localtime_r(&tt, &tm);
    return tm;
}

std::string minutes_phrase(std::int64_t seconds) {
    // Rounded up: "in 1 min" rather than "in 0 min" for a start 30 s away.
    if (seconds < 0) return fmt::format("{} min ago", (-seconds + 59) / 60);
    return fmt::format("in {} min", (seconds + 59) / 60);
}

// "HH:MM" (HH 0..24, 24 only as 24:00) -> minutes; -1 when malformed.
int parse_hhmm(const std::string& text) {
    int h = 0, m = 0;
    char tail = 0;
    if (std::sscanf(text.c_str(), "%2d:%2d%c", &h, &m, &tail) != 2) return -1;
    if (h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0)) return -1;
    return h * 60 + m;
}

[[noreturn]] void bad_blackout(std::string_view text, const std::string& why) {
    throw WindowError(fmt::format(
        "blackout '{}' {}: use 'START/END' with ISO 8601 date-times (2026-12-24T00:00/2026-12-26T23:59, "
        "local time unless an offset is given) or a weekly '[WEEKDAYS] HH:MM-HH:MM' in local time "
        "(Sat 01:00-03:00, mon..fri 22:00-06:00)",
        text, why));
}

}  // namespace

std::int64_t parse_iso8601(std::string_view text_in) {
    const std::string text = trim(text_in);
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    int used = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10) {
        throw WindowError(fmt::format("'{}' is not an ISO 8601 date-time (YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])", text));
    }
    std::string rest = text.substr(10);
    if (!rest.empty()) {
        if (rest[0] != 'T' && rest[0] != 't' && rest[0] != ' ') {
            throw WindowError(fmt::format("'{}' is not an ISO 8601 date-time (YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])", text));
        }
        int n = 0;
        if (std::sscanf(rest.c_str() + 1, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5) {
            throw WindowError(fmt::format("'{}': expected HH:MM after the date", text));
        }
        rest = rest.substr(6);
        if (!rest.empty() && rest[0] == ':') {
            if (std::sscanf(rest.c_str() + 1, "%2d%n", &s, &n) != 1 || n != 2) {
                throw WindowError(fmt::format("'{}': expected :SS after HH:MM", text));
            }
            rest = rest.substr(3);
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) {
        throw WindowError(fmt::format("'{}' is not a valid date-time", text));
    }
    if (rest.empty()) return local_to_epoch({y, mo, d, h, mi, s});
    const auto as_utc = utc_to_epoch({y, mo, d, h, mi, s});
    if (rest == "Z" || rest == "z") return as_utc;
    int oh = 0, om = 0;
    const char sign = rest[0];
    std::string digits = rest.substr(1);
    digits.erase(std::remove(digits.begin(), digits.end(), ':'), digits.end());
    if ((sign != '+' && sign != '-') || (digits.size() != 2 && digits.size() != 4) ||
        !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); })) {
        throw WindowError(fmt::format("'{}': unknown UTC offset '{}' (use Z, +HH:MM or -HH:MM)", text, rest));
    }
    oh = std::stoi(digits.substr(0, 2));
    if (digits.size() == 4) om = std::stoi(digits.substr(2));
    const std::int64_t offset = (oh * 3600 + om * 60) * (sign == '-' ? -1 : 1);
    return as_utc - offset;
}

std::string format_utc(std::int64_t t) {
    const auto tt = static_cast<std::time_t>(t);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string format_local(std::int64_t t) {
    const std::tm tm = local_tm(t);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
    return buf;
}

Blackout parse_blackout(std::string_view text_in) {
    const std::string text = trim(text_in);
    Blackout b;
    b.text = text;
    if (text.empty()) bad_blackout(text, "is empty");
    if (const auto slash = text.find('/'); slash != std::string::npos) {
        try {
            b.start = parse_iso8601(text.substr(0, slash));
            b.end = parse_iso8601(text.substr(slash + 1));
        } catch (const WindowError& e) {
            bad_blackout(text, e.what());
        }
        if (b.end <= b.start) bad_blackout(text, "ends before it starts");
        return b;
    }
    b.weekly = true;
    std::string range = text;
    if (std::isalpha(static_cast<unsigned char>(text.front()))) {
        const auto space = text.find_first_of(" \t");
        if (space == std::string::npos) bad_blackout(text, "has no time range");
        try {
            b.days = weekday_mask(text.substr(0, space));
        } catch (const CalendarError& e) {
            bad_blackout(text, e.what());
        }
        range = text.substr(space + 1);
    }
    range.erase(std::remove_if(range.begin(), range.end(), [](unsigned char c) { return std::isspace(c); }), range.end());
    const auto dash = range.find('-');
    if (dash == std::string::npos) bad_blackout(text, "has no HH:MM-HH:MM time range");
    b.start_min = parse_hhmm(range.substr(0, dash));
    b.end_min = parse_hhmm(range.substr(dash + 1));
    if (b.start_min < 0 || b.end_min < 0 || b.start_min == 1440) bad_blackout(text, "has an invalid time");
    if (b.start_min == b.end_min) bad_blackout(text, "is empty (start = end)");
    return b;
}

std::optional<std::pair<std::int64_t, std::int64_t>> Blackout::first_overlap(std::int64_t from, std::int64_t to) const {
    if (!weekly) {
        if (start < to && end > from) return std::make_pair(start, end);
        return std::nullopt;
    }
    // From the local day before `from` (an occurrence may run past midnight) to the day of `to`.
    const std::tm first = local_tm(from - 86400);
    for (int k = 0; k < 800; ++k) {
        std::tm day{};
        day.tm_year = first.tm_year;
        day.tm_mon = first.tm_mon;
        day.tm_mday = first.tm_mday + k;
        day.tm_isdst = -1;
        std::tm normalized = day;
        const auto midnight = static_cast<std::int64_t>(std::mktime(&normalized));
        if (midnight > to) break;
        const int weekday = (normalized.tm_wday + 6) % 7;  // Monday = 0
        if (!(days & (1U << static_cast<unsigned>(weekday)))) continue;
        const int y = normalized.tm_year + 1900, mo = normalized.tm_mon + 1, d = normalized.tm_mday;
        const std::int64_t s = local_to_epoch({y, mo, d, start_min / 60, start_min % 60, 0});
        const int end_day = end_min <= start_min ? d + 1 : d;
        const std::int64_t e = local_to_epoch({y, mo, end_day, end_min / 60, end_min % 60, 0});
        if (s < to && e > from) return std::make_pair(s, e);
    }
    return std::nullopt;
}

json JobStart::to_json(std::int64_t now) const {
    json j = job.to_json();
    j["next_start"] = next_utc ? json(format_utc(*next_utc)) : json(nullptr);
    j["next_start_local"] = next_utc ? json(next_local.empty() ? format_local(*next_utc) : next_local) : json(nullptr);
    j["minutes_from_now"] = next_utc ? json((*next_utc - now) / 60) : json(nullptr);
    return j;
}

json Conflict::to_json() const {
    return {{"kind", kind}, {"name", name}, {"at", format_utc(at)}, {"at_local", format_local(at)}, {"message", message}};
}

std::vector<Conflict> find_conflicts(const WindowRequest& r, const std::vector<JobStart>& jobs,
                                     const std::vector<Blackout>& blackouts) {
    std::vector<Conflict> out;
    const std::int64_t end = r.now + r.window_s;
    const std::int64_t window_min = r.window_s / 60;
    if (r.deadline && end > *r.deadline) {
        const std::string when = fmt::format("{} ({})", format_local(*r.deadline), format_utc(*r.deadline));
        out.push_back({"deadline", r.deadline_text, *r.deadline,
                       *r.deadline <= r.now
                           ? fmt::format("the deadline {} has passed", when)
                           : fmt::format("a {}-minute maintenance starting now ends at {} ({}), after the deadline {}",
                                         window_min, format_local(end), format_utc(end), when)});
    }
    for (const auto& j : jobs) {
        if (!j.next_utc || *j.next_utc < r.now - r.grace_s || *j.next_utc > end) continue;
        const std::string local = j.next_local.empty() ? format_local(*j.next_utc) : j.next_local;
        out.push_back({"job", j.job.key(), *j.next_utc,
                       fmt::format("{} job '{}'{} (schedule '{}') starts at {} ({}), {}: inside the {}-minute "
                                   "maintenance window",
                                   j.job.kind, j.job.id, j.job.detail.empty() ? "" : fmt::format(" [{}]", j.job.detail),
                                   j.job.schedule, local, format_utc(*j.next_utc),
                                   minutes_phrase(*j.next_utc - r.now), window_min)});
    }
    for (const auto& b : blackouts) {
        if (const auto hit = b.first_overlap(r.now, end)) {
            out.push_back({"blackout", b.text, hit->first,
                           fmt::format("blackout '{}' ({} to {}, {} to {}) overlaps the maintenance window {} to {}",
                                       b.text, format_local(hit->first), format_local(hit->second),
                                       format_utc(hit->first), format_utc(hit->second), format_local(r.now),
                                       format_local(end))});
        }
    }
    std::stable_sort(out.begin(), out.end(), [](const Conflict& a, const Conflict& b) { return a.at < b.at; });
    return out;
}

}  // namespace pbs_patch
