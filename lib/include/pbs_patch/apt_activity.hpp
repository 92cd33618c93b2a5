// Package-manager activity on the host: running apt/dpkg processes (from /proc) and who holds
// the apt/dpkg lock files (from /proc/locks). Inspection only; nothing here waits or locks.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

struct ProcessInfo {
    int pid = 0;
    std::string comm;
    std::string cmdline;  // arguments joined by spaces
    char state = '?';     // from /proc/<pid>/status ('Z' zombie); '?' when unknown
    int ppid = 0;
    nlohmann::json to_json() const;
};

// Package activity: apt, apt-get, aptitude, dpkg, unattended-upgrade(s), and apt.systemd.daily (apt-daily's
// script, which runs apt-get update and unattended-upgrade), by comm or by the script in argv. Not activity: a
// zombie (it holds nothing), and unattended-upgrades' always-running shutdown helper
// (unattended-upgrade-shutdown --wait-for-signal, comm "unattended-upgr" like unattended-upgrade itself).
bool is_package_manager_process(const ProcessInfo& process);

// Why a process is not package activity although its name says apt/dpkg/unattended-upgrade: "zombie",
// "unattended-upgrades shutdown helper (idle)"; empty when it is activity or not a package manager at all.
std::string why_not_activity(const ProcessInfo& process);

// The PIDs among `processes` that descend from `root` (by their ppid), `root` excluded.
std::vector<int> descendants_among(const std::vector<ProcessInfo>& processes, int root);

// Reads /proc/<pid>/{comm,cmdline,status}; processes that vanish while reading are skipped.
std::vector<ProcessInfo> list_processes(const std::string& proc_root);
// Only processes that share our root directory: a dpkg in a chroot or a container (another package
// database) is neither waited for nor reported.
std::vector<ProcessInfo> find_package_manager_processes(const std::string& proc_root, int exclude_pid);

// Where /proc/<pid>/root points (`pid` may be "self"); empty when it cannot be read.
std::string root_of(const std::string& proc_root, const std::string& pid);

struct LockEntry {
    std::string kind;    // POSIX, FLOCK, OFDLCK, LEASE
    std::string access;  // READ, WRITE
    int pid = 0;         // -1 for OFD locks
    unsigned major = 0;
    unsigned minor = 0;
    unsigned long long inode = 0;
};

// Parses /proc/locks; blocked waiters (`->` lines) are not holders and are skipped.
std::vector<LockEntry> parse_proc_locks(std::string_view text);

struct LockHolder {
    std::string path;
    int pid = 0;
    std::string comm;
    std::string cmdline;
    nlohmann::json to_json() const;
};

std::vector<LockHolder> find_lock_holders(const std::vector<std::string>& lock_files, const std::string& proc_root);

// True when apt's output says it could not get one of its locks (apt-pkg's GetLock: "Could not get lock
// /var/lib/dpkg/lock-frontend. It is held by process N (name)", "Unable to acquire the dpkg frontend lock",
// "Unable to lock directory /var/lib/apt/lists/"): someone took the lock in between, worth waiting for.
bool is_apt_lock_failure(std::string_view apt_output);

// The lock files apt and dpkg use.
const std::vector<std::string>& default_lock_files();

}  // namespace pbs_patch
