// /proc scans for package-manager processes and lock holders.
#include "pbs_patch/apt_activity.hpp"

#include "pbs_patch/proc_status.hpp"
#include "pbs_patch/text.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>

namespace pbs_patch {

using nlohmann::json;

namespace {

std::string basename_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string read_small(const std::string& path) {
    try {
        return read_file(path);
    } catch (const std::exception&) {
        return {};
    }
}

ProcessInfo read_process(const std::string& proc_root, int pid) {
    ProcessInfo p;
    p.pid = pid;
    const std::string dir = proc_root + "/" + std::to_string(pid);
    p.comm = trim(read_small(dir + "/comm"));
    std::string cmdline = read_small(dir + "/cmdline");
    while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    p.cmdline = cmdline;
    if (const auto status = read_proc_status(proc_root, pid)) {
        p.state = status->state;
        p.ppid = status->ppid;
    }
    return p;
}

// The program a process runs: argv[0], or the script when argv[0] is an interpreter (python3 script,
// sh script, perl script).
std::string program_of(const ProcessInfo& process) {
    const auto words = split_ws(process.cmdline);
    if (words.empty()) return process.comm;
    const std::string first = basename_of(words[0]);
    const bool interpreter = first.rfind("python", 0) == 0 || first == "sh" || first == "bash" || first == "dash" ||
                             first == "perl";
    if (interpreter) {
        for (std::size_t i = 1; i < words.size(); ++i) {
            if (words[i].empty() || words[i][0] == '-') continue;  // interpreter options (python3 -E)
            return basename_of(words[i]);
        }
    }
    return first;
}

}  // namespace

std::string root_of(const std::string& proc_root, const std::string& pid) {
    char target[PATH_MAX];
    const auto n = ::readlink((proc_root + "/" + pid + "/root").c_str(), target, sizeof target);
    return n <= 0 ? std::string{} : std::string(target, static_cast<std::size_t>(n));
}

json ProcessInfo::to_json() const {
    return json{{"pid", pid}, {"comm", comm}, {"cmdline", cmdline}, {"state", std::string(1, state)}, {"ppid", ppid}};
}

json LockHolder::to_json() const {
    return json{{"path", path}, {"pid", pid}, {"comm", comm}, {"cmdline", cmdline}};
}

std::string why_not_activity(const ProcessInfo& process) {
    if (process.state == 'Z' || process.state == 'X') return "zombie";
    if (program_of(process) == "unattended-upgrade-shutdown") return "unattended-upgrades shutdown helper (idle)";
    return {};
}

bool is_package_manager_process(const ProcessInfo& process) {
    if (!why_not_activity(process).empty()) return false;
    // comm is truncated to 15 characters: "unattended-upgr" is unattended-upgrade and its shutdown helper alike
    // (the helper is told apart by its argv above), "apt.systemd.dai" is apt.systemd.daily.
    static const char* const names[] = {"apt", "apt-get", "aptitude", "dpkg", "unattended-upgr", "unattended-upgrade",
                                        "unattended-upgrades", "apt.systemd.dai"};
    for (const char* n : names)
        if (process.comm == n) return true;
    // Interpreted tools show the interpreter as comm: look at the first two argv words.
    const auto words = split_ws(process.cmdline);
    for (std::size_t i = 0; i < words.size() && i < 2; ++i) {
        const std::string base = basename_of(words[i]);
        if (base == "unattended-upgrade" || base == "unattended-upgrades" || base == "apt-get" || base == "dpkg" ||
            base == "aptitude" || base == "apt" || base == "apt.systemd.daily") {
            return true;
        }
    }
    return false;
}

std::vector<int> descendants_among(const std::vector<ProcessInfo>& processes, int root) {
    std::vector<int> out;
    std::vector<int> todo{root};
    while (!todo.empty()) {
        const int parent = todo.back();
        todo.pop_back();
        for (const auto& p : processes) {
            if (p.ppid != parent || p.pid == root || p.pid <= 0) continue;
            if (std::find(out.begin(), out.end(), p.pid) != out.end()) continue;
            out.push_back(p.pid);
            todo.push_back(p.pid);
        }
    }
    return out;
}

std::vector<ProcessInfo> list_processes(const std::string& proc_root) {
    std::vector<ProcessInfo> out;
    DIR* dir = ::opendir(proc_root.c_str());
    if (!dir) return out;
    while (const dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        if (name.empty() || !std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); })) {
            continue;
        }
        ProcessInfo p = read_process(proc_root, std::atoi(name.c_str()));
        if (!p.comm.empty()) out.push_back(std::move(p));  // vanished processes read as empty
    }
    ::closedir(dir);
    std::sort(out.begin(), out.end(), [](const ProcessInfo& a, const ProcessInfo& b) { return a.pid < b.pid; });
    return out;
}

std::vector<ProcessInfo> find_package_manager_processes(const std::string& proc_root, int exclude_pid) {
    std::vector<ProcessInfo> out;
    const std::string own_root = root_of(proc_root, "self");
    for (auto& p : list_processes(proc_root)) {
        if (p.pid == exclude_pid || !is_package_manager_process(p)) continue;
        // A dpkg in a chroot or a container works on another package database; unknown roots still count.
        const std::string root = root_of(proc_root, std::to_string(p.pid));
        if (!own_root.empty() && !root.empty() && root != own_root) continue;
        out.push_back(std::move(p));
    }
    return out;
}

std::vector<LockEntry> parse_proc_locks(std::string_view text) {
    // "1: POSIX  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (major:minor in hex, inode in decimal)
    std::vector<LockEntry> out;
    for (const auto& line : split_lines(text)) {
        const auto words = split_ws(line);
        if (words.size() < 6 || words[1] == "->") continue;
        LockEntry e;
        e.kind = words[1];
        e.access = words[3];
        try {
            e.pid = std::stoi(words[4]);
            const auto& dev = words[5];
            const auto c1 = dev.find(':');
            const auto c2 = dev.find(':', c1 + 1);
            if (c1 == std::string::npos || c2 == std::string::npos) continue;
            e.major = static_cast<unsigned>(std::stoul(dev.substr(0, c1), nullptr, 16));
            e.minor = static_cast<unsigned>(std::stoul(dev.substr(c1 + 1, c2 - c1 - 1), nullptr, 16));
            e.inode = std::stoull(dev.substr(c2 + 1));
        } catch (const std::exception&) {
            continue;
        }
        out.push_back(e);
    }
    return out;
}

std::vector<LockHolder> find_lock_holders(const std::vector<std::string>& lock_files, const std::string& proc_root) {
    std::vector<LockHolder> holders;
    const auto locks = parse_proc_locks(read_small(proc_root + "/locks"));
    for (const auto& path : lock_files) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) continue;
        for (const auto& lock : locks) {
            if (lock.inode != st.st_ino || lock.major != ::major(st.st_dev) || lock.minor != ::minor(st.st_dev)) continue;
            LockHolder h;
            h.path = path;
            h.pid = lock.pid;
            if (lock.pid > 0) {
                const auto p = read_process(proc_root, lock.pid);
                h.comm = p.comm;
                h.cmdline = p.cmdline;
            } else {
                h.comm = "(open file description lock: holder pid unknown)";
            }
            holders.push_back(std::move(h));
        }
    }
    return holders;
}

bool is_apt_lock_failure(std::string_view apt_output) {
    static const char* const markers[] = {"E: Could not get lock ", "E: Unable to acquire the dpkg frontend lock",
                                          "E: Unable to lock directory ", "E: Unable to lock the administration directory"};
    for (const auto& line : split_lines(apt_output)) {
        for (const char* m : markers) {
            if (starts_with(trim(line), m)) return true;
        }
    }
    return false;
}

const std::vector<std::string>& default_lock_files() {
    static const std::vector<std::string> files = {"/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock",
                                                   "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock"};
    return files;
}

}  // namespace pbs_patch
