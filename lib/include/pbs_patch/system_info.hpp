// Thin system probes (each takes its root path so tests can point it elsewhere) and the pure
// parsers behind them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pbs_patch {

constexpr unsigned long long kGiB = 1024ULL * 1024ULL * 1024ULL;

struct DiskSpace {
    unsigned long long avail_bytes = 0;  // available to unprivileged users, like df's "Avail"
    long long avail_gib = 0;             // what `df -BG --output=avail` prints: rounded up
};

// df rounds a size up to the next whole block unit.
long long df_ceil_gib(unsigned long long bytes);
DiskSpace probe_disk_space(const std::string& path);  // throws std::runtime_error

// `/proc/uptime`: first field, seconds.
std::optional<double> parse_uptime(std::string_view text);

// A boot id is a UUID (`8-4-4-4-12` hex digits, as /proc/sys/kernel/random/boot_id prints it): anything else,
// such as an error text read while the host shuts down (ansible issue #83018), is nullopt. Lowercased.
std::optional<std::string> parse_boot_id(std::string_view text);
// Throws std::runtime_error when the file cannot be read or does not hold a UUID.
std::string read_boot_id(const std::string& proc_root = "/proc");
std::optional<double> read_uptime(const std::string& proc_root = "/proc");
std::string kernel_release();
bool file_exists(const std::string& path);
// A Unix time, and now, as ISO 8601 UTC (`2026-11-27T09:30:00Z`), for reports.
std::string utc_iso(long long epoch_seconds);
std::string utc_now_iso();

}  // namespace pbs_patch
