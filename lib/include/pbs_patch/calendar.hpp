// Proxmox calendar events (PBS job schedules, PVE vzdump schedules) evaluated with systemd's own
// calendar code: normalise what proxmox-time accepts and systemd does not, parse `systemd-analyze calendar`.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

struct CalendarError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Rewrites a proxmox-time calendar event into the systemd form with the same meaning:
//  - weekday ranges that wrap around the week (`fri..mon`, `sun..sat`) become lists (systemd refuses them);
//  - `*/N` in a time or month/day field becomes `0/N` (hours, minutes, seconds) or `1/N` (months, days).
// Throws CalendarError for what cannot be mapped (empty text, an unknown weekday, `*/N` on years).
std::string normalize_calendar_event(std::string_view event);

// A weekday list in proxmox-time's syntax ("mon..fri,sun", "fri..mon", "saturday") as a bit mask,
// bit 0 = Monday .. bit 6 = Sunday. Throws CalendarError naming what is not a weekday.
unsigned weekday_mask(std::string_view list);

// One calendar event as `systemd-analyze calendar` printed it.
struct CalendarElapse {
    std::int64_t utc = 0;    // seconds since the epoch
    std::string local_text;  // as printed, in the host's time zone: "Sat 2026-11-28 01:00:00 CET"
};

struct CalendarAnalysis {
    std::string original;
    std::string normalized;
    std::vector<CalendarElapse> elapses;  // empty when the event never elapses again ("Next elapse: never")
};

// Parses the output of `systemd-analyze calendar [--iterations=N] EXPR...` (one block per expression).
// Uses the "(in UTC)" lines when present (host zone is not UTC); without them systemd considers the host
// zone to be UTC, and the printed times are taken as UTC. Throws CalendarError on anything unexpected.
std::vector<CalendarAnalysis> parse_systemd_calendar_output(std::string_view text);

// "YYYY-MM-DD HH:MM:SS" as UTC -> seconds since the epoch; nullopt when malformed.
std::optional<std::int64_t> parse_utc_datetime(std::string_view date, std::string_view time);

struct CalendarProbeOptions {
    std::string systemd_analyze = "systemd-analyze";
    std::chrono::milliseconds timeout{std::chrono::seconds(30)};
    int iterations = 1;
    std::optional<std::string> timezone;  // TZ for the evaluation; the host's zone when unset
};

// Next elapses of `event` strictly after `base_utc`, computed by the host's systemd-analyze in the host's
// (or the given) time zone. The event is normalised first. Throws CalendarError with systemd's message.
CalendarAnalysis next_elapses(const std::string& event, std::int64_t base_utc, const CalendarProbeOptions& options);

}  // namespace pbs_patch
