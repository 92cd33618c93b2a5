// pbs_upgrade: the spec's bounded package upgrade on a PBS host. What changed is read from dpkg before and
// after, never from apt's progress output; a timed-out dist-upgrade is a warning unless dpkg is left broken.
// The work runs detached from the Ansible connection (a transient systemd unit, or a daemon where systemd is not
// PID 1; upgrade_run.hpp): a lost SSH session never kills apt/dpkg, and a rerun waits for a running upgrade or
// reports a finished one instead of starting a second apt beside it.
#include "pbs_patch/apt_activity.hpp"
#include "pbs_patch/apt_plan.hpp"
#include "pbs_patch/dpkg_audit.hpp"
#include "pbs_patch/dpkg_state.hpp"
#include "pbs_patch/kernels.hpp"
#include "pbs_patch/module.hpp"
#include "pbs_patch/process.hpp"
#include "pbs_patch/reboot_flag.hpp"
#include "pbs_patch/system_info.hpp"
#include "pbs_patch/text.hpp"
#include "pbs_patch/upgrade_run.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <optional>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace {

// Whether stdout still leads somewhere: a pipe or socket whose reader went away polls as POLLERR/POLLHUP.
bool stdout_has_reader() {
    pollfd p{STDOUT_FILENO, POLLOUT, 0};
    if (::poll(&p, 1, 0) < 0) return true;
    return (p.revents & (POLLERR | POLLHUP | POLLNVAL)) == 0;
}

using nlohmann::json;
using namespace pbs_patch;
using Clock = std::chrono::steady_clock;

const ParamSpecs kSpec = {
    {.name = "fix_broken", .type = ParamType::Bool, .default_value = true},
    {.name = "update_cache", .type = ParamType::Bool, .default_value = true},
    {.name = "upgrade_timeout", .type = ParamType::Int, .default_value = 3600, .min_value = 1},
    {.name = "update_timeout", .type = ParamType::Int, .default_value = 600, .min_value = 1},
    {.name = "fix_broken_timeout", .type = ParamType::Int, .default_value = 900, .min_value = 1},
    {.name = "dpkg_configure_timeout", .type = ParamType::Int, .default_value = 900, .min_value = 1},
    {.name = "command_timeout", .type = ParamType::Int, .default_value = 120, .min_value = 1},
    {.name = "reboot_required_file", .type = ParamType::Path, .default_value = "/var/run/reboot-required"},
    {.name = "boot_path", .type = ParamType::Path, .default_value = "/boot"},
    {.name = "output_lines", .type = ParamType::Int, .default_value = 40, .min_value = 0},
    {.name = "apt_wait_timeout", .type = ParamType::Int, .default_value = 300, .min_value = 0},
    {.name = "apt_poll_interval", .type = ParamType::Int, .default_value = 5, .min_value = 1},
    {.name = "lock_files", .type = ParamType::List, .default_value = default_lock_files()},
    {.name = "detach", .type = ParamType::Bool, .default_value = true},
    {.name = "state_dir", .type = ParamType::Path, .default_value = kUpgradeStateDir},
};

// Seconds beyond a worker's own bound that a waiter allows it (process runner's SIGKILL waits, state writes).
constexpr std::int64_t kWorkerSlack = 120;

// On every apt-get that may configure packages: keep local config files, never ask. No pty: with one, apt
// runs dpkg in a new session (setsid), outside the process group the timeout kills, and a "timed out"
// dpkg would go on holding the lock (seen in the sandbox test).
const std::vector<std::string> kConfOptions = {"-o", "Dpkg::Options::=--force-confdef", "-o",
                                               "Dpkg::Options::=--force-confold", "-o", "Dpkg::Use-Pty=0"};

std::vector<std::string> apt_get(std::vector<std::string> head, const std::vector<std::string>& tail) {
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
}

class Upgrade {
public:
    explicit Upgrade(Module& module) : m_(module) {}

    json run() {
        const auto started = Clock::now();
        before_ = snapshot("before");
        if (m_.check_mode()) return simulate(started);

        // Someone may have taken the apt lock since the gate looked (unattended-upgrades waking up): wait for
        // them, bounded, rather than failing at once.
        wait_for_apt("before the upgrade");
        if (m_.boolean("fix_broken")) {
            const auto r = step("fix_broken", apt_get({"apt-get", "-y"}, kConfOptions), {"--fix-broken", "install"},
                                "fix_broken_timeout");
            if (r.rc != 0) fail(fmt::format("apt-get --fix-broken install {}", describe_failure(r, "fix_broken_timeout")), r);
        }
        if (m_.boolean("update_cache")) {
            const auto r = step("update_cache", {"apt-get", "update"}, {}, "update_timeout");
            if (r.rc != 0) fail(fmt::format("apt-get update (cache refresh) {}", describe_failure(r, "update_timeout")), r);
        }
        const auto r = step("dist_upgrade", apt_get({"apt-get", "-y"}, kConfOptions), {"dist-upgrade"}, "upgrade_timeout");
        upgrade_ = r;
        held_back_ = parse_held_back(r.out);
        if (r.timed_out) {
            m_.warn(fmt::format("apt-get dist-upgrade timed out after {} s and was stopped (rc 124); dpkg state checked",
                                m_.integer("upgrade_timeout")));
            settle_dpkg_after_timeout();
        } else if (r.rc != 0) {
            fail(fmt::format("apt-get dist-upgrade {}", describe_failure(r, "upgrade_timeout")), r);
        }
        return finish(started, diff_dpkg_states(before_, snapshot("after")));
    }

private:
    json simulate(Clock::time_point started) {
        m_.warn("check mode: apt cache not refreshed and --fix-broken not run; the simulation uses the current package "
                "lists");
        const auto r = step("simulate", apt_get({"apt-get", "-s"}, kConfOptions), {"dist-upgrade"}, "command_timeout");
        upgrade_ = r;
        if (r.rc != 0) fail(fmt::format("apt-get -s dist-upgrade {}", describe_failure(r, "command_timeout")), r);
        const auto plan = parse_apt_simulation(r.out);
        held_back_ = plan.held_back;
        return finish(started, plan.changes);
    }

    // After a timeout the group is dead; dpkg may be mid-way. One bounded repair, then refuse to go on
    // (the role would reboot next) if dpkg is still inconsistent.
    void settle_dpkg_after_timeout() {
        auto audit = audit_dpkg();
        if (audit.empty()) return;
        steps_["dpkg_audit"] = json{{"findings", tail_lines(audit, 20)}};
        m_.warn("dpkg was left with unfinished work by the timed-out upgrade: running dpkg --configure -a once");
        const auto r = configure_pending_packages(std::chrono::seconds(m_.integer("dpkg_configure_timeout")));
        record_step("dpkg_configure", r);
        audit = audit_dpkg();
        if (!audit.empty()) {
            fail(fmt::format("dpkg is inconsistent after the timed-out dist-upgrade and one dpkg --configure -a "
                             "(rc {}{}): {} - do not reboot this host before repairing it",
                             r.rc, r.timed_out ? ", timed out" : "", tail_lines(audit, 5)),
                 r);
        }
    }

    // dpkg --audit's findings, empty when consistent. Not being able to ask is a failure too.
    std::string audit_dpkg() {
        const auto audit = pbs_patch::audit_dpkg(std::chrono::seconds(m_.integer("command_timeout")));
        if (!audit.readable) fail(audit.problem, ProcessResult{});
        return audit.findings;
    }

    DpkgState snapshot(const char* when) {
        const auto r = run_process({"dpkg-query", "-W", std::string("-f=") + kDpkgQueryFormat}, timeout_of("command_timeout"));
        if (r.rc != 0) {
            fail(fmt::format("cannot read the installed packages ({}): dpkg-query {}", when,
                             describe_failure(r, "command_timeout")),
                 r);
        }
        try {
            return parse_dpkg_state(r.out);
        } catch (const DpkgStateError& e) {
            fail(fmt::format("cannot read the installed packages ({}): {}", when, e.what()), r);
        }
    }

    // One apt-get step. A lock taken between our wait and apt's own attempt fails apt at once ("Could not get
    // lock ..."): wait again, within what is left of apt_wait_timeout, and retry. apt itself also waits for the
    // dpkg frontend lock (DPkg::Lock::Timeout) for what is left of that budget.
    ProcessResult step(const char* name, std::vector<std::string> argv, const std::vector<std::string>& extra,
                       const char* timeout_param) {
        argv.insert(argv.end(), extra.begin(), extra.end());
        while (true) {
            auto full = argv;
            if (!m_.check_mode() && full.size() > 1 && full[0] == "apt-get" && full[1] == "-y") {
                full.insert(full.begin() + 1, {"-o", fmt::format("DPkg::Lock::Timeout={}", lock_budget_left())});
            }
            auto r = run_process(full, timeout_of(timeout_param));
            record_step(name, r);
            if (!r.error.empty() && r.timed_out) m_.warn(fmt::format("{}: {}", name, r.error));
            if (r.rc == 0 || r.timed_out || !is_apt_lock_failure(r.out + r.err) || lock_budget_left() <= 0) return r;
            m_.warn(fmt::format("{}: apt could not get its lock ({}); waiting for the holder", name,
                                tail_lines(trim(r.err), 1)));
            wait_for_apt(fmt::format("after apt-get {} found a lock taken", name));
        }
    }

    long long lock_budget_left() const {
        return std::max<long long>(0, m_.integer("apt_wait_timeout") - static_cast<long long>(lock_waited_s_));
    }

    // Waits while apt/dpkg processes run or their locks are held (as pbs_gate does), at most what is left of
    // apt_wait_timeout over the whole run; then apt decides (and names a holder that is still there).
    void wait_for_apt(const std::string& when) {
        const auto poll = std::chrono::seconds(m_.integer("apt_poll_interval"));
        const auto locks = m_.list("lock_files");
        while (true) {
            std::vector<std::string> busy;
            for (const auto& p : find_package_manager_processes("/proc", static_cast<int>(::getpid()))) {
                lock_waited_for_[p.pid] = p.to_json();
                busy.push_back(fmt::format("pid {} ({})", p.pid, p.cmdline.empty() ? p.comm : p.cmdline));
            }
            for (const auto& h : find_lock_holders(locks, "/proc")) {
                if (h.pid == static_cast<int>(::getpid())) continue;
                lock_waited_for_[h.pid] = h.to_json();
                busy.push_back(fmt::format("{} held by pid {} ({})", h.path, h.pid, h.cmdline.empty() ? h.comm : h.cmdline));
            }
            if (busy.empty()) return;
            const long long left = lock_budget_left();
            if (left <= 0) {
                m_.warn(fmt::format("apt/dpkg still busy {} after waiting {:.0f} s (apt_wait_timeout): {}", when,
                                    lock_waited_s_, join(busy, "; ")));
                return;
            }
            const auto nap = std::min<std::chrono::seconds>(poll, std::chrono::seconds(left));
            const auto t0 = Clock::now();
            std::this_thread::sleep_for(nap);
            lock_waited_s_ += std::chrono::duration<double>(Clock::now() - t0).count();
        }
    }

    void record_step(const char* name, const ProcessResult& r) {
        steps_[name] = json{{"cmd", r.argv}, {"rc", r.rc}, {"timed_out", r.timed_out}, {"duration_s", r.duration_s}};
    }

    RunOptions timeout_of(const char* param) const {
        RunOptions options;
        options.timeout = std::chrono::seconds(m_.integer(param));
        return options;
    }

    std::string describe_failure(const ProcessResult& r, const char* timeout_param) const {
        if (r.timed_out) return fmt::format("timed out after {} s", m_.integer(timeout_param));
        const auto why = tail_lines(trim(r.err.empty() ? r.out + r.error : r.err + r.error), 5);
        return fmt::format("failed (rc {}): {}", r.rc, why.empty() ? "no output" : why);
    }

    json finish(Clock::time_point started, const std::vector<PackageChange>& changes) {
        const auto lines = static_cast<std::size_t>(m_.integer("output_lines"));
        const auto flag = read_reboot_flag(m_.str("reboot_required_file"));
        const auto kernel = kernel_status(kernel_release(), list_directory(m_.str("boot_path")));
        const auto pending = kernel.pending();
        if (!pending) m_.warn(fmt::format("no vmlinuz-* in {}: pending kernel unknown", m_.str("boot_path")));
        json result{{"changed", !changes.empty()},
                    {"packages", to_json(changes)},
                    {"held_back", held_back_},
                    {"timed_out", upgrade_ ? upgrade_->timed_out : false},
                    {"rc", upgrade_ ? upgrade_->rc : 0},
                    {"duration_s", std::chrono::duration<double>(Clock::now() - started).count()},
                    {"reboot_required", flag.required},
                    {"reboot_required_pkgs", flag.pkgs},
                    {"kernel_pending", pending ? json(*pending) : json(nullptr)},
                    {"kernel", kernel.to_json()},
                    {"steps", steps_},
                    {"stdout_tail", upgrade_ ? tail_lines(upgrade_->out, lines) : ""},
                    {"stderr_tail", upgrade_ ? tail_lines(upgrade_->err, lines) : ""},
                    {"check_mode", m_.check_mode()},
                    {"lock_wait", lock_wait_json()}};
        if (m_.diff_mode()) result["diff"] = package_diff(changes);
        if (!lock_waited_for_.empty()) {
            m_.warn(fmt::format("apt/dpkg was busy before the upgrade (someone took the lock after the gate looked): "
                                "waited {:.0f} s for {} process(es)",
                                lock_waited_s_, lock_waited_for_.size()));
        }
        if (!held_back_.empty()) {
            m_.warn(fmt::format("{} package(s) held back: {}", held_back_.size(), join(held_back_, " ")));
        }
        const std::string verb = m_.check_mode() ? "would change" : "changed";
        std::string msg = changes.empty() ? std::string(m_.check_mode() ? "no package would change" : "no package changed")
                                          : fmt::format("{} {} package(s)", verb, changes.size());
        if (!held_back_.empty()) msg += fmt::format(", {} held back", held_back_.size());
        if (result["timed_out"] == true) msg += "; dist-upgrade timed out (dpkg consistent)";
        result["msg"] = msg;
        return result;
    }

    // Fails with what is known so far, including what already changed (changed stays truthful).
    [[noreturn]] void fail(const std::string& msg, const ProcessResult& r) {
        json extra{{"steps", steps_}, {"rc", r.rc}, {"timed_out", upgrade_ ? upgrade_->timed_out : r.timed_out},
                   {"stdout_tail", tail_lines(r.out, 40)}, {"stderr_tail", tail_lines(r.err, 40)},
                   {"held_back", held_back_}, {"packages", json::array()}, {"changed", false},
                   {"lock_wait", lock_wait_json()}};
        if (!before_.empty() && !m_.check_mode() && !in_failure_) {
            in_failure_ = true;
            try {
                const auto now = run_process({"dpkg-query", "-W", std::string("-f=") + kDpkgQueryFormat},
                                             timeout_of("command_timeout"));
                if (now.rc == 0) {
                    const auto changes = diff_dpkg_states(before_, parse_dpkg_state(now.out));
                    extra["packages"] = to_json(changes);
                    extra["changed"] = !changes.empty();
                }
            } catch (const std::exception&) {
                // the failure message matters more than the package list
            }
        }
        throw ModuleFailure(msg, extra);
    }

    json lock_wait_json() const {
        json j{{"waited_s", lock_waited_s_}, {"waited_for", json::array()}};
        for (const auto& [pid, p] : lock_waited_for_) j["waited_for"].push_back(p);
        return j;
    }

    Module& m_;
    double lock_waited_s_ = 0;
    std::map<int, json> lock_waited_for_;
    DpkgState before_;
    std::optional<ProcessResult> upgrade_;
    std::vector<std::string> held_back_;
    json steps_ = json::object();
    bool in_failure_ = false;
};

json run_upgrade(Module& m) { return Upgrade(m).run(); }

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string boot_id_now() {
    try {
        return read_boot_id();
    } catch (const std::exception&) {
        return {};
    }
}

// The worker's own hard bound: the sum of the bounds of everything it may run (each step is ended at its own
// timeout by the process runner, which waits at most ~15 s more for a tree that ignores SIGKILL).
std::int64_t worker_bound_s(const Module& m) {
    const std::int64_t per_step_kill = 20;
    std::int64_t b = m.integer("apt_wait_timeout") + m.integer("upgrade_timeout") + m.integer("dpkg_configure_timeout") +
                     4 * m.integer("command_timeout") + 6 * per_step_kill + 60;
    if (m.boolean("fix_broken")) b += m.integer("fix_broken_timeout");
    if (m.boolean("update_cache")) b += m.integer("update_timeout");
    return b;
}

// The environment the worker runs apt with: the module's, minus what belongs to the SSH session.
json worker_environment() {
    static const char* const drop[] = {"_", "PWD", "OLDPWD", "SHLVL", "TERM", "SSH_CLIENT", "SSH_CONNECTION",
                                       "SSH_TTY", "SSH_AUTH_SOCK", "XDG_SESSION_ID", "XDG_RUNTIME_DIR",
                                       "XDG_SESSION_TYPE", "XDG_SESSION_CLASS", "MAIL", "LS_COLORS"};
    json env = json::object();
    for (char** e = environ; e && *e; ++e) {
        const std::string entry(*e);
        const auto eq = entry.find('=');
        if (eq == std::string::npos) continue;
        const std::string key = entry.substr(0, eq);
        if (std::find(std::begin(drop), std::end(drop), key) != std::end(drop)) continue;
        env[key] = entry.substr(eq + 1);
    }
    return env;
}

void write_private_file(const std::string& path, const std::string& content) {
    const std::string tmp = path + ".tmp";
    {
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) throw UpgradeRunError(fmt::format("cannot write {}", tmp));
        ::close(fd);
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << content;
        if (!out.flush()) throw UpgradeRunError(fmt::format("cannot write {}", tmp));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw UpgradeRunError(fmt::format("cannot replace {}", path));
}

// The worker runs from its own copy of this binary: Ansible deletes its temporary directory after the task.
void copy_self(const std::string& to) {
    std::ifstream in("/proc/self/exe", std::ios::binary);
    if (!in) throw UpgradeRunError("cannot read /proc/self/exe");
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_private_file(to, bytes);
    ::chmod(to.c_str(), 0700);
}

// What an earlier run's result says, for this run's report.
json previous_summary(const UpgradeRun& run) {
    const json& r = run.result;
    return json{{"run_id", run.run_id},
                {"started_at", utc_iso(run.started_at)},
                {"finished_at", run.finished_at ? json(utc_iso(*run.finished_at)) : json(nullptr)},
                {"failed", r.value("failed", false)},
                {"msg", r.value("msg", "")},
                {"timed_out", r.value("timed_out", false)},
                {"packages", r.value("packages", json::array())}};
}

class Detached {
public:
    explicit Detached(Module& m) : m_(m), dir_(m.str("state_dir")) {}

    json run() {
        try {
            dir_.ensure();
        } catch (const UpgradeRunError& e) {
            throw ModuleFailure(fmt::format("cannot prepare the upgrade state directory: {}", e.what()));
        }
        const int spawn = dir_.lock("spawn.lock", std::chrono::seconds(60));
        if (spawn < 0) {
            throw ModuleFailure(fmt::format("another pbs_upgrade is starting an upgrade ({} is locked for over 60 s): "
                                            "not starting a second apt beside it",
                                            dir_.file("spawn.lock")));
        }
        struct Release {
            int fd;
            ~Release() { unlock(fd); }
        } release{spawn};

        std::optional<UpgradeRun> state;
        try {
            state = dir_.read();
        } catch (const UpgradeRunError& e) {
            m_.warn(fmt::format("ignoring an unreadable upgrade state: {}", e.what()));
        }
        const auto previous = classify_previous_run(state, dir_.worker_alive(), boot_id_now());
        if (previous == PreviousRun::Running) {
            unlock(spawn);
            release.fd = -1;
            return attach(state);
        }
        json earlier = nullptr;
        if (previous == PreviousRun::Unreported) {
            earlier = previous_summary(*state);
            m_.warn(fmt::format("{} finished at {} and its result was never received (connection lost?): it is "
                                "reported here, and its package changes are included",
                                state->describe(), state->finished_at ? utc_iso(*state->finished_at) : "?"));
            state->consumed = true;
            dir_.write(*state);
        } else if (previous == PreviousRun::Died) {
            earlier = json{{"run_id", state->run_id}, {"started_at", utc_iso(state->started_at)}, {"finished_at", nullptr},
                           {"failed", true}, {"msg", "ended without a result (killed, or its bound was hit)"},
                           {"timed_out", false}, {"packages", json::array()}};
            m_.warn(fmt::format("{} ended without a result (killed, or its bound was hit); dpkg's state is what "
                                "this run starts from",
                                state->describe()));
        }
        UpgradeRun run = start_worker();
        unlock(spawn);
        release.fd = -1;
        return finish(wait_for(run.run_id, run), false, earlier);
    }

private:
    UpgradeRun start_worker() {
        UpgradeRun run;
        run.run_id = new_run_id();
        run.status = "starting";
        run.mode = systemd_booted() ? "systemd" : "daemon";
        run.unit = run.mode == "systemd" ? kUpgradeUnit : "";
        run.boot_id = boot_id_now();
        run.started_at = now_s();
        run.bound_s = worker_bound_s(m_);
        try {
            copy_self(dir_.file("pbs_upgrade"));
            json args = m_.params();
            args["_ansible_check_mode"] = false;
            args["_ansible_diff"] = m_.diff_mode();
            write_private_file(dir_.file("worker.json"),
                               json{{"run_id", run.run_id}, {"args", args}, {"env", worker_environment()}}.dump());
            dir_.write(run);
        } catch (const UpgradeRunError& e) {
            throw ModuleFailure(fmt::format("cannot prepare the detached upgrade: {}", e.what()));
        }
        if (run.mode == "systemd") {
            start_unit(run);
        } else {
            start_daemon();
        }
        // The worker holds run.lock and says "running" (or is already done) within seconds.
        const auto until = Clock::now() + std::chrono::seconds(60);
        while (Clock::now() < until) {
            try {
                if (const auto s = dir_.read(); s && s->run_id == run.run_id && s->status != "starting") return *s;
            } catch (const UpgradeRunError&) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        throw ModuleFailure(fmt::format("the detached upgrade worker did not start within 60 s ({}){}; nothing was "
                                        "upgraded by it",
                                        run.mode == "systemd" ? unit_state() : "see " + dir_.file("worker.log"),
                                        run.mode == "systemd" ? ": journalctl -u " + std::string(kUpgradeUnit) : ""));
    }

    void start_unit(const UpgradeRun& run) {
        RunOptions options;
        options.timeout = std::chrono::seconds(60);
        const auto r = run_process({"systemd-run", "--unit=" + std::string(kUpgradeUnit),
                                    "--description=pbs_patch dist-upgrade (run " + run.run_id + ")", "--collect",
                                    "--quiet", "-p", fmt::format("RuntimeMaxSec={}", run.bound_s + kWorkerSlack),
                                    "-p", "TimeoutStopSec=30", "--", dir_.file("pbs_upgrade"), "--worker", dir_.path()},
                                   options);
        if (r.rc != 0) {
            throw ModuleFailure(fmt::format("cannot start the upgrade as systemd unit {} (systemd-run rc {}): {}",
                                            kUpgradeUnit, r.rc, tail_lines(trim(r.err + r.error), 3)));
        }
    }

    // Without systemd: a daemon (new session, no terminal, SIGHUP ignored), re-parented to init.
    void start_daemon() {
        const std::string exe = dir_.file("pbs_upgrade");
        const std::string log = dir_.file("worker.log");
        const pid_t child = ::fork();
        if (child < 0) throw ModuleFailure("cannot fork the upgrade worker");
        if (child == 0) {
            ::setsid();
            if (::fork() != 0) ::_exit(0);
            ::signal(SIGHUP, SIG_IGN);
            const int in = ::open("/dev/null", O_RDONLY);
            const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (in >= 0) ::dup2(in, 0);
            if (out >= 0) {
                ::dup2(out, 1);
                ::dup2(out, 2);
            }
            for (int fd = 3; fd < 1024; ++fd) ::close(fd);
            ::execl(exe.c_str(), exe.c_str(), "--worker", dir_.path().c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        int status = 0;
        ::waitpid(child, &status, 0);
    }

    std::string unit_state() const {
        RunOptions options;
        options.timeout = std::chrono::seconds(15);
        const auto r = run_process({"systemctl", "show", "-p", "ActiveState", "-p", "Result", "-p", "ExecMainStatus",
                                    kUpgradeUnit},
                                   options);
        std::string text = trim(r.out);
        std::replace(text.begin(), text.end(), '\n', ' ');
        return text.empty() ? "unit state unknown" : text;
    }

    json attach(const std::optional<UpgradeRun>& state) {
        const std::string who = state ? state->describe() : std::string("an upgrade of an earlier run");
        m_.warn(fmt::format("{} is still running: waiting for it instead of starting a second apt beside it", who));
        UpgradeRun known = state.value_or(UpgradeRun{});
        if (!state) {
            known.started_at = now_s();
            known.bound_s = worker_bound_s(m_);
        }
        return finish(wait_for(known.run_id, known), true, nullptr);
    }

    // Until the worker's lock is free, then its result. Bounded by the worker's own bound: it is ended by its
    // own timeouts (and systemd's RuntimeMaxSec) long before a waiter gives up.
    UpgradeRun wait_for(const std::string& run_id, const UpgradeRun& known) {
        const std::int64_t give_up = known.deadline() + kWorkerSlack + 60;
        while (dir_.worker_alive()) {
            if (now_s() > give_up) {
                throw ModuleFailure(fmt::format("{} is still running past its bound of {} s: not starting another apt; "
                                                "it goes on on the host ({})",
                                                known.describe(), known.bound_s, log_hint(known)));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
        std::optional<UpgradeRun> done;
        try {
            done = dir_.read();
        } catch (const UpgradeRunError& e) {
            throw ModuleFailure(fmt::format("the detached upgrade ended, but its state cannot be read: {}", e.what()));
        }
        if (!done || (!run_id.empty() && done->run_id != run_id) || !done->finished()) {
            const auto audit = audit_dpkg(std::chrono::seconds(m_.integer("command_timeout")));
            throw ModuleFailure(fmt::format(
                "{} ended without a result (killed, or its bound was hit; {}); dpkg --audit: {} - do not reboot "
                "before looking at it",
                known.describe(), log_hint(known),
                audit.readable ? (audit.findings.empty() ? std::string("consistent") : tail_lines(audit.findings, 5))
                               : audit.problem));
        }
        return *done;
    }

    std::string log_hint(const UpgradeRun& run) const {
        return run.mode == "daemon" ? "log: " + dir_.file("worker.log")
                                    : "journalctl -u " + std::string(kUpgradeUnit);
    }

    json finish(UpgradeRun done, bool attached, const json& earlier) {
        // The result reaches Ansible only through stdout. When nobody reads it any more (the SSH session was cut
        // while this module waited for the worker, without a SIGHUP since there is no terminal), it stays
        // unreceived, so that the next run reports it instead of it being lost.
        if (stdout_has_reader()) {
            done.consumed = true;
            try {
                dir_.write(done);
            } catch (const UpgradeRunError& e) {
                m_.warn(fmt::format("could not mark the upgrade result as received: {}", e.what()));
            }
        }
        json r = done.result;
        const bool failed = r.value("failed", false);
        const std::string msg = r.value("msg", "");
        for (const auto& w : r.value("warnings", json::array())) {
            if (w.is_string()) m_.warn(w.get<std::string>());
        }
        for (const char* key : {"warnings", "invocation", "failed", "msg"}) r.erase(key);
        r["detached"] = json{{"mode", done.mode},
                             {"unit", done.unit.empty() ? json(nullptr) : json(done.unit)},
                             {"run_id", done.run_id},
                             {"worker_pid", done.worker_pid},
                             {"state_dir", dir_.path()},
                             {"bound_s", done.bound_s},
                             {"log", log_hint(done)}};
        r["attached"] = attached;
        r["previous_run"] = earlier;
        std::string suffix;
        if (attached) suffix = fmt::format(" (by {}, which this run waited for)", done.describe());
        if (earlier.is_object()) {
            r["packages"] = merge_package_changes(earlier.value("packages", json::array()),
                                                  r.value("packages", json::array()));
            r["changed"] = r.value("changed", false) || !r["packages"].empty();
            suffix += fmt::format("; includes the upgrade an earlier run started at {} ({})",
                                  earlier.value("started_at", "?"), earlier.value("msg", ""));
        }
        if (failed) throw ModuleFailure(msg + suffix, r);
        r["msg"] = msg + suffix;
        return r;
    }

    Module& m_;
    UpgradeRunDir dir_;
};

json run_pbs_upgrade(Module& m) {
    UpgradeRunDir dir(m.str("state_dir"));
    if (m.check_mode()) {
        if (dir.worker_alive()) {
            std::string who = "an upgrade started by an earlier run";
            try {
                if (const auto s = dir.read()) who = s->describe();
            } catch (const UpgradeRunError&) {
            }
            m.warn(fmt::format("{} is still running: a real run would wait for it; the simulation does not show what "
                               "it is doing",
                               who));
        }
        return Upgrade(m).run();
    }
    if (m.boolean("detach")) return Detached(m).run();
    if (dir.worker_alive()) {
        throw ModuleFailure(fmt::format("a detached upgrade is running ({}): not starting a second apt beside it",
                                        dir.path()));
    }
    return Upgrade(m).run();
}

// The worker: runs the upgrade as the module would, with the arguments and environment the foreground left,
// and writes the result into the state directory. Holds run.lock for its whole life.
int run_worker(const std::string& state_dir) {
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGPIPE, SIG_IGN);
    UpgradeRunDir dir(state_dir);
    int lock = -1;
    try {
        lock = dir.lock("run.lock", std::chrono::seconds(30));
        if (lock < 0) {
            std::fprintf(stderr, "pbs_upgrade worker: %s is held by another worker\n", dir.file("run.lock").c_str());
            return 1;
        }
        const json spec = json::parse(read_file(dir.file("worker.json")));
        for (const auto& [key, value] : spec.at("env").items()) {
            if (value.is_string()) ::setenv(key.c_str(), value.get<std::string>().c_str(), 1);
        }
        auto state = dir.read();
        if (!state || state->run_id != spec.at("run_id").get<std::string>()) {
            std::fprintf(stderr, "pbs_upgrade worker: the state does not belong to this run\n");
            return 1;
        }
        state->status = "running";
        state->worker_pid = static_cast<int>(::getpid());
        dir.write(*state);
        std::fprintf(stdout, "pbs_upgrade worker: run %s started (bound %lld s)\n", state->run_id.c_str(),
                     static_cast<long long>(state->bound_s));
        std::fflush(stdout);
        state->result = run_module_json(spec.at("args").dump(), kSpec, run_upgrade);
        state->status = "finished";
        state->finished_at = now_s();
        dir.write(*state);
        std::fprintf(stdout, "pbs_upgrade worker: run %s finished: %s%s\n", state->run_id.c_str(),
                     state->result.value("failed", false) ? "FAILED: " : "",
                     state->result.value("msg", std::string()).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pbs_upgrade worker: %s\n", e.what());
        unlock(lock);
        return 1;
    }
    unlock(lock);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--worker") return run_worker(argv[2]);
    return pbs_patch::run_module(argc, argv, kSpec, run_pbs_upgrade);
}
