// Active operations per datastore, as PBS tracks them (pbs-datastore/src/task_tracking.rs): the JSON file
// /run/proxmox-backup/active-operations/<store> holds one entry per process, `{"pid", "starttime",
// "active_operations": {"read", "write"}}`; only entries whose process still runs with that start time count.
// This is what `GET /admin/datastore/<store>/active-operations` answers (`{"read": N, "write": N}`).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

inline constexpr const char* kActiveOperationsDir = "/run/proxmox-backup/active-operations";

struct ActiveOperations {
    std::int64_t read = 0;
    std::int64_t write = 0;
    bool idle() const { return read == 0 && write == 0; }
    nlohmann::json to_json() const { return {{"read", read}, {"write", write}}; }
};

struct OperationsEntry {
    std::uint32_t pid = 0;
    std::uint64_t starttime = 0;  // field 22 of /proc/<pid>/stat, clock ticks since boot
    ActiveOperations operations;
};

struct ActiveOperationsError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Throws ActiveOperationsError unless the text is a JSON array of such entries with in-range numbers.
std::vector<OperationsEntry> parse_active_operations(std::string_view text);

// The start time of a running process (nullopt when it is gone or a zombie), like proxmox-sys's
// check_process_running.
using StartTimeOf = std::function<std::optional<std::uint64_t>(std::uint32_t pid)>;

// Sum over the entries whose process still runs with the recorded start time (get_active_operations).
ActiveOperations sum_live_operations(const std::vector<OperationsEntry>& entries, const StartTimeOf& starttime_of);

// Field 22 (starttime) of a /proc/<pid>/stat line; nullopt for a zombie or a malformed line.
std::optional<std::uint64_t> parse_proc_stat_starttime(std::string_view stat);

// Reads <proc_root>/<pid>/stat.
std::optional<std::uint64_t> process_starttime(const std::string& proc_root, std::uint32_t pid);

// The live operations of one datastore: a missing file means none (PBS's file_read_optional_string);
// an unreadable or malformed one throws ActiveOperationsError.
ActiveOperations read_active_operations(const std::string& dir, const std::string& store, const std::string& proc_root);

}  // namespace pbs_patch
