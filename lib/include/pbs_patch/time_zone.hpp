// Time-zone names given by the operator or read from Proxmox VE: an unknown name must be refused, because
// glibc and systemd silently evaluate an unknown TZ as UTC (a job at 01:00 Europe/Berlin would be checked
// an hour off). A name is known when the host's zoneinfo database has a TZif file for it.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace pbs_patch {

struct TimeZoneError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Why `name` cannot be an IANA zone name, from its spelling alone (empty, absolute, "..", characters outside
// [A-Za-z0-9_+-/], a POSIX TZ rule such as "CET-1CEST,M3.5.0"); empty when the spelling is fine.
std::string time_zone_name_problem(std::string_view name);

// True when `bytes` start like a compiled zone file (RFC 8536: "TZif").
bool is_tzif(std::string_view bytes);

// Throws TimeZoneError naming the zone, where it was looked for and what is accepted, unless
// <zoneinfo_dir>/<name> is a TZif file. `what` says whose zone it is ("pve_timezone", "job 'x'").
void check_time_zone(const std::string& name, const std::string& what,
                     const std::string& zoneinfo_dir = "/usr/share/zoneinfo");

}  // namespace pbs_patch
