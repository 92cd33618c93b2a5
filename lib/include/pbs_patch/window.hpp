// The maintenance window as a gate: [now, now + window] must hold no scheduled job start, overlap no operator
// blackout and end before the deadline. Pure logic over an injectable "now"; local time is the process's TZ.
#pragma once

#include "pbs_patch/pbs_jobs.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

struct WindowError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ISO 8601 date-time: "2026-12-24T06:00", "2026-12-24 06:00:00", with "Z", "+01:00" or "+0100", or
// without an offset = the host's local time. Throws WindowError naming the text.
std::int64_t parse_iso8601(std::string_view text);

std::string format_utc(std::int64_t t);    // 2026-11-27T09:00:00Z
std::string format_local(std::int64_t t);  // 2026-11-27 10:00:00 CET (the process's time zone)

// An operator blackout. Two forms:
//  - absolute: "START/END", two ISO 8601 date-times ("2026-12-24T00:00/2026-12-26T23:59");
//  - weekly:   "[WEEKDAYS] HH:MM-HH:MM" in local time ("Sat 01:00-03:00", "mon..fri 22:00-06:00" ends the next
//              day, "sat,sun 00:00-24:00", "12:00-13:00" every day). Weekdays as in calendar events.
struct Blackout {
    std::string text;
    bool weekly = false;
    std::int64_t start = 0, end = 0;  // absolute
    unsigned days = 0x7F;             // weekly: bit 0 = Monday
    int start_min = 0, end_min = 0;   // weekly: minutes after local midnight; end <= start ends the next day

    // The first occurrence overlapping [from, to), as UTC seconds [start, end).
    std::optional<std::pair<std::int64_t, std::int64_t>> first_overlap(std::int64_t from, std::int64_t to) const;
};

Blackout parse_blackout(std::string_view text);  // throws WindowError with the accepted forms

// A job with its next start as computed (nullopt: never starts again).
struct JobStart {
    ScheduledJob job;
    std::optional<std::int64_t> next_utc;
    std::string next_local;  // as the evaluating zone prints it
    nlohmann::json to_json(std::int64_t now) const;
};

struct Conflict {
    std::string kind;  // "job", "blackout", "deadline"
    std::string name;  // job key, blackout text, deadline text
    std::int64_t at = 0;  // job start, blackout start, deadline
    std::string message;
    nlohmann::json to_json() const;
};

struct WindowRequest {
    std::int64_t now = 0;
    std::int64_t window_s = 0;
    // PBS looks at schedules once a minute: a start this many seconds in the past may not have begun yet.
    std::int64_t grace_s = 60;
    std::optional<std::int64_t> deadline;
    std::string deadline_text;
};

// Everything that forbids starting now, in time order; empty = the window is free.
std::vector<Conflict> find_conflicts(const WindowRequest& request, const std::vector<JobStart>& jobs,
                                     const std::vector<Blackout>& blackouts);

}  // namespace pbs_patch
