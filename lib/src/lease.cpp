// Maintenance lease: the state machine and its file store. The lock is a sidecar file (never renamed), so
// flock serialises every reader and writer, while the lease itself is replaced atomically by rename.
#include "pbs_patch/lease.hpp"

#include "pbs_patch/json_number.hpp"

#include "pbs_patch/text.hpp"
#include "pbs_patch/unique_fd.hpp"
#include "pbs_patch/window.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace pbs_patch {

using nlohmann::json;

json Lease::to_json() const {
    json j{{"owner", owner},
           {"purpose", purpose},
           {"host", host},
           {"started_at", format_utc(started_at)},
           {"ttl_s", ttl_s},
           {"expires_at", failed() ? json(nullptr) : json(format_utc(expires_at()))},
           {"state", state},
           {"token", token}};
    if (failed_at) j["failed_at"] = format_utc(*failed_at);
    if (!failure.empty()) j["failure"] = failure;
    return j;
}

Lease Lease::from_json(const json& j) {
    if (!j.is_object()) throw LeaseError(fmt::format("lease is not a JSON object: {}", j.dump()));
    auto str = [&](const char* key, bool required) -> std::string {
        const auto it = j.find(key);
        if (it == j.end() || it->is_null()) {
            if (required) throw LeaseError(fmt::format("lease has no '{}'", key));
            return {};
        }
        if (!it->is_string()) throw LeaseError(fmt::format("lease '{}' is not a string", key));
        return it->get<std::string>();
    };
    Lease l;
    l.owner = str("owner", true);
    l.purpose = str("purpose", false);
    l.host = str("host", false);
    l.state = str("state", true);
    if (l.state != "held" && l.state != "failed") throw LeaseError(fmt::format("lease state '{}' is unknown", l.state));
    l.token = str("token", true);
    l.failure = str("failure", false);
    try {
        l.started_at = parse_iso8601(str("started_at", true));
        if (const auto f = str("failed_at", false); !f.empty()) l.failed_at = parse_iso8601(f);
    } catch (const WindowError& e) {
        throw LeaseError(fmt::format("lease time: {}", e.what()));
    }
    const auto ttl = j.find("ttl_s");
    if (ttl == j.end() || ttl->is_null()) throw LeaseError("lease has no integer 'ttl_s'");
    // A TTL beyond ~292 years would overflow started_at + ttl: out of range is malformed, not "never expires".
    const auto ttl_s = json_integer(*ttl, 0, std::int64_t{1} << 33);
    if (!ttl_s) throw LeaseError(fmt::format("lease 'ttl_s' {}", json_integer_problem(*ttl, 0, std::int64_t{1} << 33)));
    l.ttl_s = *ttl_s;
    return l;
}

std::string Lease::describe() const {
    std::string text = fmt::format("owner '{}'", owner);
    if (!purpose.empty()) text += fmt::format(" (purpose: {})", purpose);
    if (!host.empty()) text += fmt::format(" for host {}", host);
    text += fmt::format(" since {}", format_utc(started_at));
    if (failed()) {
        text += fmt::format(", marked FAILED at {}", failed_at ? format_utc(*failed_at) : std::string("?"));
        if (!failure.empty()) text += fmt::format(": {}", failure);
    } else {
        text += fmt::format(", expires {} ({})", format_utc(expires_at()), format_local(expires_at()));
    }
    return text;
}

std::string lease_clear_hint(const std::string& path, const std::string& cfs_lock_dir) {
    if (!cfs_lock_dir.empty()) {
        return fmt::format(
            "once PBS is checked, an operator clears it with: ansible-playbook -i <inventory> playbooks/clear_lease.yml "
            "-e maintenance_lease_host=<any Proxmox VE node> -e maintenance_lease_path={} -e maintenance_lease_lock_dir={} "
            "(or on any node of the cluster: rm -f {})",
            path, cfs_lock_dir, path);
    }
    return fmt::format(
        "once PBS is checked, an operator clears it with: ansible-playbook -i <inventory> playbooks/clear_lease.yml "
        "-e maintenance_lease_host=<Proxmox VE node> -e maintenance_lease_path={} (or on that node: rm -f {})",
        path, path);
}

LeaseDecision decide_lease(const std::optional<Lease>& current, const LeaseRequest& r, const std::string& clear_hint) {
    LeaseDecision d;
    auto fresh = [&] {
        Lease l;
        l.owner = r.owner;
        l.purpose = r.purpose;
        l.host = r.host;
        l.started_at = r.now;
        l.ttl_s = r.ttl_s;
        l.token = r.token;
        return l;
    };
    if (r.state == "acquired") {
        if (!current) {
            d = {"acquired", true, false, "maintenance lease acquired", fresh(), {}};
        } else if (current->failed()) {
            d = {"refused", false, true,
                 fmt::format("maintenance lease is held by a FAILED run, {}: nothing may proceed while the host may be "
                             "unhealthy; {}",
                             current->describe(), clear_hint),
                 current, {}};
        } else if (!r.token.empty() && current->token == r.token) {
            d = {"already_held", false, false, "maintenance lease already held with this token", current, {}};
        } else if (current->expired(r.now)) {
            d = {"taken_over", true, false, "expired maintenance lease taken over", fresh(), {}};
            d.warnings.push_back(fmt::format("took over an expired maintenance lease: {}", current->describe()));
        } else {
            d = {"refused", false, true,
                 fmt::format("maintenance lease is held by {}; try again after it is released or expires",
                             current->describe()),
                 current, {}};
        }
    } else if (r.state == "released") {
        if (!current) {
            d = {"already_free", false, false, "no maintenance lease is held", std::nullopt, {}};
        } else if (r.force) {
            d = {"released", true, false, "maintenance lease cleared (force)", std::nullopt, {}};
            d.warnings.push_back(fmt::format("cleared the maintenance lease of {}", current->describe()));
        } else if (r.token.empty() || current->token != r.token) {
            d = {"refused", false, true,
                 fmt::format("not releasing the maintenance lease: it is held by {} under another token", current->describe()),
                 current, {}};
        } else if (current->failed()) {
            d = {"refused", false, true,
                 fmt::format("not releasing a FAILED maintenance lease ({}); {}", current->describe(), clear_hint), current, {}};
        } else {
            d = {"released", true, false, "maintenance lease released", std::nullopt, {}};
        }
    } else if (r.state == "failed") {
        Lease failed = current ? *current : fresh();
        if (current && current->failed() && (r.token.empty() || current->token == r.token)) {
            return {"already_failed", false, false, "maintenance lease already marked failed", current, {}};
        }
        if (!current) {
            d.warnings.push_back("no maintenance lease was held; recorded a failed one so that nothing proceeds");
        } else if (r.token.empty() || current->token != r.token) {
            // Ours expired and was taken over while we ran: a failed host still stops everyone.
            d.warnings.push_back(fmt::format("marked another holder's maintenance lease failed: {}", current->describe()));
            failed = fresh();
        }
        failed.state = "failed";
        failed.failed_at = r.now;
        failed.failure = r.reason;
        d.action = "marked_failed";
        d.changed = true;
        d.message = fmt::format("maintenance lease marked FAILED: it stays until an operator clears it; {}", clear_hint);
        d.next = failed;
    } else {
        throw LeaseError(fmt::format("unknown lease state '{}'", r.state));
    }
    return d;
}

std::string new_lease_token() {
    unsigned char bytes[16];
    std::ifstream in("/dev/urandom", std::ios::binary);
    if (!in.read(reinterpret_cast<char*>(bytes), sizeof bytes)) throw LeaseError("cannot read /dev/urandom");
    std::string out;
    for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
    return out;
}

namespace {

using Fd = UniqueFd;

std::string parent_of(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

void make_dirs(const std::string& dir) {
    if (dir.empty() || dir == "/" || dir == ".") return;
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) throw LeaseError(fmt::format("{} exists and is not a directory", dir));
        return;
    }
    make_dirs(parent_of(dir));
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        throw LeaseError(fmt::format("cannot create {}: {}", dir, std::strerror(errno)));
    }
}

void lock_exclusive(int fd, const std::string& lock_path, std::chrono::milliseconds timeout, bool shared) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (::flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            throw LeaseError(fmt::format("cannot lock {}: {}", lock_path, std::strerror(errno)));
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            throw LeaseError(fmt::format("{} stayed locked for {} ms by another lease operation", lock_path,
                                         timeout.count()));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void write_all(int fd, const std::string& data, const std::string& path) {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw LeaseError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
        }
        done += static_cast<std::size_t>(n);
    }
}

std::string short_hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "host";
    std::string h(buf);
    return h.substr(0, h.find('.'));
}

void write_lease(const std::string& path, const Lease& lease) {
    // Host and pid in the name: on a cluster filesystem writers on other nodes must not share a temp file.
    const std::string tmp = fmt::format("{}.tmp.{}.{}", path, short_hostname(), ::getpid());
    {
        Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (fd.get() < 0) throw LeaseError(fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
        write_all(fd.get(), lease.to_json().dump(2) + "\n", tmp);
        if (::fsync(fd.get()) != 0) throw LeaseError(fmt::format("cannot sync {}: {}", tmp, std::strerror(errno)));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw LeaseError(fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(err)));
    }
    Fd dir(::open(parent_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() >= 0) ::fsync(dir.get());
}

// A cluster-wide lock the way PVE::Cluster cfs_lock takes it (pve-cluster src/PVE/Cluster.pm).
class CfsLock {
public:
    CfsLock(const std::string& lock_dir, const std::string& id, std::chrono::milliseconds timeout)
        : path_(lock_dir + "/" + id), id_(id) {
        ::mkdir(lock_dir.c_str(), 0755);
        struct stat st {};
        if (::stat(lock_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            throw LeaseError(fmt::format("cfs-lock '{}' error: pve cluster filesystem not online ({} is missing)", id,
                                         lock_dir));
        }
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            if (::mkdir(path_.c_str(), 0755) == 0) return;
            const int err = errno;
            if (err != EEXIST) {
                throw LeaseError(fmt::format("cfs-lock '{}' error: cannot create {}: {} (no quorum? without quorum the "
                                             "cluster filesystem is read-only)",
                                             id, path_, std::strerror(err)));
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                throw LeaseError(fmt::format("cfs-lock '{}' error: got lock request timeout (another lease operation "
                                             "holds {} for more than {} ms)",
                                             id, path_, timeout.count()));
            }
            // cfs unlock request: pmxcfs deletes the lock if it has not changed for 120 s (a holder that died).
            struct timespec zero[2] = {{0, 0}, {0, 0}};
            ::utimensat(AT_FDCWD, path_.c_str(), zero, 0);
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    ~CfsLock() { ::rmdir(path_.c_str()); }
    CfsLock(const CfsLock&) = delete;
    CfsLock& operator=(const CfsLock&) = delete;

private:
    std::string path_;
    std::string id_;
};

}  // namespace

std::string cfs_lock_id(const std::string& lease_path, const std::string& lock_dir) {
    std::string dir = lock_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    std::string root;
    static const std::string suffix = "/priv/lock";
    if (dir.size() > suffix.size() && dir.compare(dir.size() - suffix.size(), suffix.size(), suffix) == 0) {
        root = dir.substr(0, dir.size() - suffix.size()) + "/";
    }
    std::string rel = lease_path;
    if (!root.empty() && rel.compare(0, root.size(), root) == 0) rel = rel.substr(root.size());
    while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
    std::string id = "file-" + rel;
    for (char& c : id) {
        if (c == '.' || c == '/') c = '_';
    }
    return id;
}

LeaseOutcome apply_lease(const std::string& path, LeaseRequest request, const LeaseFileOptions& options) {
    if (request.state == "acquired" && request.token.empty()) request.token = new_lease_token();
    const std::string dir = parent_of(path);
    const std::string lock_path = path + ".lock";
    LeaseOutcome out;
    struct stat st {};
    const bool dir_exists = ::stat(dir.c_str(), &st) == 0;
    if (options.check_mode && !dir_exists) {
        out.decision = decide_lease(std::nullopt, request, lease_clear_hint(path, options.cfs_lock_dir));
        return out;
    }
    if (!options.check_mode) make_dirs(dir);
    std::optional<CfsLock> cfs;
    std::optional<Fd> lock;
    if (!options.cfs_lock_dir.empty()) {
        // Check mode reads without locking: it changes nothing, and a lock dir is a change on pmxcfs.
        if (!options.check_mode) cfs.emplace(options.cfs_lock_dir, cfs_lock_id(path, options.cfs_lock_dir), options.lock_timeout);
    } else {
        lock.emplace(::open(lock_path.c_str(), (options.check_mode ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0644));
        if (lock->get() < 0 && !(options.check_mode && errno == ENOENT)) {
            throw LeaseError(fmt::format("cannot open {}: {}", lock_path, std::strerror(errno)));
        }
        if (lock->get() >= 0) lock_exclusive(lock->get(), lock_path, options.lock_timeout, options.check_mode);
    }

    std::string text;
    bool exists = false;
    {
        std::ifstream in(path, std::ios::binary);
        if (in) {
            exists = true;
            text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        } else if (::stat(path.c_str(), &st) == 0) {
            throw LeaseError(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
        }
    }
    std::string corrupt;
    if (exists) {
        try {
            out.previous_raw = json::parse(text);
            out.previous = Lease::from_json(out.previous_raw);
        } catch (const std::exception& e) {
            corrupt = e.what();
        }
    }
    if (!corrupt.empty()) {
        if (request.state == "released" && request.force) {
            out.decision = {"released", true, false, "unreadable maintenance lease cleared (force)", std::nullopt, {}};
            out.decision.warnings.push_back(fmt::format("cleared an unreadable lease file {}: {}", path, corrupt));
        } else {
            out.decision = {"refused", false, true,
                            fmt::format("maintenance lease file {} cannot be read ({}): refusing; {}", path, corrupt,
                                        lease_clear_hint(path, options.cfs_lock_dir)),
                            std::nullopt, {}};
            return out;
        }
    } else {
        out.decision = decide_lease(out.previous, request, lease_clear_hint(path, options.cfs_lock_dir));
    }
    if (options.check_mode || !out.decision.changed) return out;
    if (out.decision.next) {
        write_lease(path, *out.decision.next);
    } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        throw LeaseError(fmt::format("cannot remove {}: {}", path, std::strerror(errno)));
    }
    return out;
}

}  // namespace pbs_patch
