// State of the detached dist-upgrade worker: JSON state file, flock-based liveness, merge of package lists.
#include "pbs_patch/upgrade_run.hpp"

#include "pbs_patch/json_number.hpp"
#include "pbs_patch/package_change.hpp"
#include "pbs_patch/system_info.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <random>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace pbs_patch {

using nlohmann::json;

std::string UpgradeRun::describe() const {
    std::string text = fmt::format("the pbs_upgrade started at {} (run {}", utc_iso(started_at), run_id);
    if (worker_pid > 0) text += fmt::format(", pid {}", worker_pid);
    if (!unit.empty()) text += fmt::format(", unit {}", unit);
    return text + ")";
}

json UpgradeRun::to_json() const {
    json j{{"run_id", run_id},         {"status", status},     {"mode", mode},
           {"unit", unit},             {"worker_pid", worker_pid}, {"boot_id", boot_id},
           {"started_at", started_at}, {"bound_s", bound_s},   {"consumed", consumed},
           {"finished_at", finished_at ? json(*finished_at) : json(nullptr)}, {"result", result}};
    return j;
}

UpgradeRun UpgradeRun::from_json(const json& j) {
    if (!j.is_object()) throw UpgradeRunError(fmt::format("upgrade state is a JSON {}, not an object", j.type_name()));
    auto str = [&](const char* key, bool required) -> std::string {
        const auto it = j.find(key);
        if (it == j.end() || it->is_null()) {
            if (required) throw UpgradeRunError(fmt::format("upgrade state has no '{}'", key));
            return {};
        }
        if (!it->is_string()) throw UpgradeRunError(fmt::format("upgrade state '{}' is not a string", key));
        return it->get<std::string>();
    };
    auto integer = [&](const char* key, bool required, std::int64_t max) -> std::optional<std::int64_t> {
        const auto it = j.find(key);
        if (it == j.end() || it->is_null()) {
            if (required) throw UpgradeRunError(fmt::format("upgrade state has no '{}'", key));
            return std::nullopt;
        }
        const auto n = json_integer(*it, 0, max);
        if (!n) throw UpgradeRunError(fmt::format("upgrade state '{}' {}", key, json_integer_problem(*it, 0, max)));
        return n;
    };
    constexpr std::int64_t kMaxTime = std::int64_t{1} << 40;
    UpgradeRun r;
    r.run_id = str("run_id", true);
    r.status = str("status", true);
    if (r.status != "starting" && r.status != "running" && r.status != "finished") {
        throw UpgradeRunError(fmt::format("upgrade state status '{}' is unknown", r.status));
    }
    r.mode = str("mode", false);
    r.unit = str("unit", false);
    r.boot_id = str("boot_id", false);
    r.worker_pid = static_cast<int>(integer("worker_pid", false, 0x7FFFFFFF).value_or(0));
    r.started_at = *integer("started_at", true, kMaxTime);
    r.bound_s = *integer("bound_s", true, kMaxTime);
    r.finished_at = integer("finished_at", false, kMaxTime);
    if (const auto it = j.find("consumed"); it != j.end() && it->is_boolean()) r.consumed = it->get<bool>();
    if (const auto it = j.find("result"); it != j.end()) r.result = *it;
    if (r.finished() && !r.result.is_object()) throw UpgradeRunError("finished upgrade state has no result object");
    return r;
}

PreviousRun classify_previous_run(const std::optional<UpgradeRun>& state, bool worker_alive,
                                  const std::string& boot_id_now) {
    if (worker_alive) return PreviousRun::Running;  // whatever the file says: the lock is the truth
    if (!state) return PreviousRun::None;
    // A state of an earlier boot: the host rebooted since (our own reboot step, which follows a received result,
    // or a crash whose loss the reboot's own checks report).
    if (!state->boot_id.empty() && !boot_id_now.empty() && state->boot_id != boot_id_now) return PreviousRun::None;
    if (!state->finished()) return PreviousRun::Died;
    return state->consumed ? PreviousRun::Reported : PreviousRun::Unreported;
}

std::string to_string(PreviousRun p) {
    switch (p) {
        case PreviousRun::None: return "none";
        case PreviousRun::Running: return "running";
        case PreviousRun::Unreported: return "unreported";
        case PreviousRun::Reported: return "reported";
        case PreviousRun::Died: return "died";
    }
    return "none";
}

json merge_package_changes(const json& earlier, const json& later) {
    struct Span {
        std::optional<std::string> from, to;
    };
    std::map<std::string, Span> spans;
    std::vector<std::string> order;
    auto version = [](const json& entry, const char* key) -> std::optional<std::string> {
        const auto it = entry.find(key);
        if (it == entry.end() || !it->is_string()) return std::nullopt;
        return it->get<std::string>();
    };
    auto add = [&](const json& list, bool is_earlier) {
        if (!list.is_array()) return;
        for (const auto& entry : list) {
            if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string()) continue;
            const std::string name = entry["name"].get<std::string>();
            auto [it, fresh] = spans.try_emplace(name);
            if (fresh) {
                order.push_back(name);
                it->second.from = version(entry, "from");
            } else if (is_earlier) {
                it->second.from = version(entry, "from");
            }
            it->second.to = version(entry, "to");
        }
    };
    add(earlier, true);
    add(later, false);
    json out = json::array();
    for (const auto& name : order) {
        const auto& s = spans[name];
        if (s.from == s.to) continue;  // back where it began
        out.push_back(PackageChange{name, s.from, s.to}.to_json());
    }
    return out;
}

void UpgradeRunDir::ensure() const {
    if (dir_.empty()) throw UpgradeRunError("empty upgrade state directory");
    for (std::size_t at = dir_.find('/', 1);; at = dir_.find('/', at + 1)) {
        const std::string prefix = at == std::string::npos ? dir_ : dir_.substr(0, at);
        if (!prefix.empty() && ::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
            throw UpgradeRunError(fmt::format("cannot create {}: {}", prefix, std::strerror(errno)));
        }
        if (at == std::string::npos) break;
    }
    ::chmod(dir_.c_str(), 0700);
}

std::optional<UpgradeRun> UpgradeRunDir::read() const {
    const std::string path = file("state.json");
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return std::nullopt;
        throw UpgradeRunError(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    }
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
        return UpgradeRun::from_json(json::parse(text));
    } catch (const json::parse_error& e) {
        throw UpgradeRunError(fmt::format("{} is not JSON: {}", path, e.what()));
    } catch (const UpgradeRunError& e) {
        throw UpgradeRunError(fmt::format("{}: {}", path, e.what()));
    }
}

void UpgradeRunDir::write(const UpgradeRun& run) const {
    const std::string path = file("state.json");
    const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << run.to_json().dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        out.flush();
        if (!out) throw UpgradeRunError(fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
    }
    ::chmod(tmp.c_str(), 0600);
    if (const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
        ::fsync(fd);  // the state must survive a crash of the host as well as ours
        ::close(fd);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        throw UpgradeRunError(fmt::format("cannot replace {}: {}", path, std::strerror(errno)));
    }
}

int UpgradeRunDir::lock(const char* name, std::chrono::milliseconds wait) const {
    const std::string path = file(name);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw UpgradeRunError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    const auto until = std::chrono::steady_clock::now() + wait;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            const int saved = errno;
            ::close(fd);
            throw UpgradeRunError(fmt::format("cannot lock {}: {}", path, std::strerror(saved)));
        }
        if (std::chrono::steady_clock::now() >= until) {
            ::close(fd);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return fd;
}

bool UpgradeRunDir::worker_alive() const {
    const std::string path = file("run.lock");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;  // never created: no worker ever ran here
    const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);  // releases our shared probe lock, if we got it
    return held;
}

void unlock(int fd) {
    if (fd >= 0) ::close(fd);
}

bool systemd_booted() {
    struct stat st {};
    return ::lstat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
}

std::string new_run_id() {
    std::random_device rd;
    std::uniform_int_distribution<unsigned long long> dist;
    return fmt::format("{:016x}", dist(rd));
}

}  // namespace pbs_patch
