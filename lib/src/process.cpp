// Process runner on Boost.Process v2 + asio: argv vector, captured output, hard timeout that
// ends the child's whole process group (SIGTERM, grace, SIGKILL) and reaps what it killed.
#include "pbs_patch/process.hpp"

#include "pbs_patch/proc_status.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/process/v2.hpp>
// Boost 1.81 header-only mode forgets this implementation file (process_environment::on_setup).
#include <boost/process/v2/impl/environment.ipp>

#include <array>
#include <optional>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace pbs_patch {
namespace {

namespace asio = boost::asio;
namespace bp = boost::process::v2;
using Clock = std::chrono::steady_clock;

// Runs in the forked child before exec: a process group of its own (so the timeout can end
// apt-get, dpkg and maintainer scripts together) and default signal dispositions.
struct NewProcessGroup {
    template <typename Launcher>
    bp::error_code on_exec_setup(Launcher&, const bp::filesystem::path&, const char* const*&) {
        if (::setpgid(0, 0) != 0) return bp::error_code(errno, boost::system::system_category());
        ::signal(SIGPIPE, SIG_DFL);
        ::signal(SIGTERM, SIG_DFL);
        ::signal(SIGINT, SIG_DFL);
        return {};
    }
};

bool is_executable_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::vector<std::string> build_env(const std::map<std::string, std::string>& overrides) {
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        std::string entry(*e);
        const auto eq = entry.find('=');
        if (eq != std::string::npos && overrides.count(entry.substr(0, eq))) continue;
        env.push_back(std::move(entry));
    }
    for (const auto& [k, v] : overrides) env.push_back(k + "=" + v);
    return env;
}

struct Reader {
    asio::readable_pipe& pipe;
    OutputTail& sink;
    bool& eof;
    std::array<char, 65536> buffer{};

    void start() {
        pipe.async_read_some(asio::buffer(buffer), [this](const bp::error_code& ec, std::size_t n) {
            if (n) sink.append(buffer.data(), n);
            if (ec) {
                eof = true;
                return;
            }
            start();
        });
    }
};

// Every live process below `root`, from the parent links in /proc. Catches what left the process
// group: apt runs dpkg on a pty, in a session of its own.
std::vector<pid_t> descendants_of(pid_t root) {
    std::map<pid_t, std::vector<pid_t>> children;
    if (DIR* dir = ::opendir("/proc")) {
        while (const dirent* entry = ::readdir(dir)) {
            char* end = nullptr;
            const long pid = std::strtol(entry->d_name, &end, 10);
            if (pid <= 0 || *end != '\0') continue;
            std::ifstream stat("/proc/" + std::string(entry->d_name) + "/stat");
            std::string line;
            if (!std::getline(stat, line)) continue;
            const auto close = line.rfind(')');  // comm may hold spaces and parentheses
            if (close == std::string::npos) continue;
            std::istringstream rest(line.substr(close + 1));
            char state = 0;
            long ppid = 0;
            if (!(rest >> state >> ppid) || state == 'Z') continue;
            children[static_cast<pid_t>(ppid)].push_back(static_cast<pid_t>(pid));
        }
        ::closedir(dir);
    }
    std::vector<pid_t> out;
    std::vector<pid_t> todo{root};
    while (!todo.empty()) {
        const pid_t next = todo.back();
        todo.pop_back();
        for (pid_t child : children[next]) {
            out.push_back(child);
            todo.push_back(child);
        }
    }
    return out;
}

void signal_tree(pid_t pgid, int sig) {
    ::kill(-pgid, sig);
    // Orphans of the command re-parent to us (subreaper): our descendants are the command's.
    for (pid_t pid : descendants_of(::getpid())) ::kill(pid, sig);
}

// After a timeout: the group and every descendant get SIGTERM, then SIGKILL after the grace period, and the
// runner waits until none of them is alive (reaped, as subreaper), but at most kill_wait after the SIGKILL:
// a process in uninterruptible sleep cannot be killed until the kernel lets go, and must not hang the module.
// Returns what is still there.
std::vector<pid_t> end_process_tree(pid_t pgid, Clock::time_point term_sent, std::chrono::milliseconds grace,
                                    std::chrono::milliseconds kill_wait, bool killed) {
    auto kill_sent = killed ? term_sent + grace : Clock::time_point{};
    while (true) {
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        const bool group_gone = ::kill(-pgid, 0) != 0 && errno == ESRCH;
        auto left = descendants_of(::getpid());
        if (group_gone && left.empty()) return {};
        const auto now = Clock::now();
        if (!killed && now >= term_sent + grace) {
            signal_tree(pgid, SIGKILL);
            killed = true;
            kill_sent = now;
        }
        if (killed && now >= kill_sent + kill_wait) return left;  // our stuck leader is among our descendants
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

LeftBehind describe_left_behind(pid_t pid) {
    LeftBehind l;
    l.pid = static_cast<int>(pid);
    if (const auto st = read_proc_status("/proc", static_cast<int>(pid))) {
        l.comm = st->name;
        l.state = st->state_text;
    } else {
        l.state = "unknown";
    }
    return l;
}

}  // namespace

void OutputTail::append(const char* data, std::size_t n) {
    total_ += n;
    if (limit_ == 0) return;
    if (n >= limit_) {
        buffer_.assign(data + (n - limit_), limit_);
        return;
    }
    buffer_.append(data, n);
    if (buffer_.size() > 2 * limit_) {
        const std::size_t drop = buffer_.size() - limit_;
        moved_ += limit_;
        buffer_.erase(0, drop);
    }
}

std::string OutputTail::take() {
    if (buffer_.size() > limit_) {
        moved_ += limit_;
        buffer_.erase(0, buffer_.size() - limit_);
    }
    return std::move(buffer_);
}

std::map<std::string, std::string> RunOptions::default_env() {
    return {
        {"LC_ALL", "C"},
        {"LANG", "C"},
        {"DEBIAN_FRONTEND", "noninteractive"},
        {"APT_LISTCHANGES_FRONTEND", "none"},
        {"APT_LISTBUGS_FRONTEND", "none"},
        {"NEEDRESTART_MODE", "l"},  // needrestart: list only, never ask
        {"NEEDRESTART_SUSPEND", "1"},
        {"PAGER", "cat"},
        {"SYSTEMD_PAGER", ""},
    };
}

std::string find_executable(const std::string& name) {
    if (name.empty()) return {};
    if (name.find('/') != std::string::npos) return is_executable_file(name) ? name : std::string{};
    std::string path = ::getenv("PATH") ? ::getenv("PATH") : "";
    // A module's PATH can be minimal; dpkg, systemctl and proxmox-backup-manager live in these.
    path += ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    std::size_t start = 0;
    while (start <= path.size()) {
        auto end = path.find(':', start);
        if (end == std::string::npos) end = path.size();
        const std::string dir = path.substr(start, end - start);
        if (!dir.empty()) {
            const std::string candidate = dir + "/" + name;
            if (is_executable_file(candidate)) return candidate;
        }
        start = end + 1;
    }
    return {};
}

ProcessResult run_process(const std::vector<std::string>& argv, const RunOptions& options) {
    ProcessResult result;
    result.argv = argv;
    const auto started_at = Clock::now();
    auto finish_duration = [&] {
        result.duration_s = std::chrono::duration<double>(Clock::now() - started_at).count();
    };
    if (argv.empty()) {
        result.rc = 127;
        result.error = "empty command";
        return result;
    }
    const std::string exe = find_executable(argv[0]);
    if (exe.empty()) {
        result.rc = 127;
        result.error = argv[0] + ": command not found";
        finish_duration();
        return result;
    }
    // Orphans of a killed group re-parent to us, so they can be reaped and proven gone.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);

    asio::io_context ctx;
    asio::readable_pipe out_pipe{ctx};
    asio::readable_pipe err_pipe{ctx};
    const std::vector<std::string> args(argv.begin() + 1, argv.end());
    const auto env = build_env(options.env);

    std::optional<bp::process> proc;
    try {
        proc.emplace(ctx, exe, args, bp::process_stdio{nullptr, out_pipe, err_pipe}, bp::process_environment{env},
                     NewProcessGroup{});
    } catch (const std::exception& e) {
        result.rc = 127;
        result.error = std::string("cannot start ") + exe + ": " + e.what();
        finish_duration();
        return result;
    }
    result.started = true;
    const pid_t pgid = proc->id();

    bool out_eof = false, err_eof = false, exited = false;
    int native_status = 0;
    OutputTail out_tail(options.max_output_bytes), err_tail(options.max_output_bytes);
    Reader out_reader{out_pipe, out_tail, out_eof};
    Reader err_reader{err_pipe, err_tail, err_eof};
    out_reader.start();
    err_reader.start();

    Clock::time_point term_sent{};
    bool kill_sent = false;
    asio::steady_timer deadline{ctx};
    asio::steady_timer grace{ctx};
    asio::steady_timer drain{ctx};
    asio::steady_timer give_up{ctx};

    proc->async_wait([&](const bp::error_code&, int) {
        exited = true;
        native_status = proc->native_exit_code();
        // Output still open after the leader exited (a member kept the pipe): wait briefly, then stop.
        drain.expires_after(result.timed_out ? options.kill_grace + std::chrono::seconds(1) : std::chrono::seconds(2));
        drain.async_wait([&](const bp::error_code& ec) {
            if (ec) return;
            deadline.cancel();
            grace.cancel();
            give_up.cancel();
            bp::error_code ignored;
            out_pipe.close(ignored);
            err_pipe.close(ignored);
        });
        if (out_eof && err_eof) {
            drain.cancel();
            deadline.cancel();
            grace.cancel();
            give_up.cancel();
        }
    });
    deadline.expires_after(options.timeout);
    deadline.async_wait([&](const bp::error_code& ec) {
        if (ec || exited) return;
        result.timed_out = true;
        term_sent = Clock::now();
        signal_tree(pgid, SIGTERM);
        grace.expires_after(options.kill_grace);
        grace.async_wait([&](const bp::error_code& gec) {
            if (gec) return;
            signal_tree(pgid, SIGKILL);
            kill_sent = true;
            // A leader that survives SIGKILL (uninterruptible sleep) never completes async_wait: stop waiting.
            give_up.expires_after(options.kill_wait);
            give_up.async_wait([&](const bp::error_code& kec) {
                if (!kec && !exited) ctx.stop();
            });
        });
    });

    // Poll-run so the EOF-after-exit condition can end the loop without cancelling every handler.
    while (!ctx.stopped()) {
        ctx.run_one();
        if (exited && out_eof && err_eof) {
            drain.cancel();
            deadline.cancel();
            grace.cancel();
            give_up.cancel();
        }
    }
    result.out = out_tail.take();
    result.err = err_tail.take();

    if (result.timed_out) {
        const auto left = end_process_tree(pgid, term_sent, options.kill_grace, options.kill_wait, kill_sent);
        if (!exited) proc->detach();  // its destructor would wait for it forever
        std::vector<std::string> parts;
        for (pid_t pid : left) {
            result.left_behind.push_back(describe_left_behind(pid));
            const auto& l = result.left_behind.back();
            parts.push_back(fmt::format("pid {} ({}, state {})", l.pid, l.comm.empty() ? "?" : l.comm, l.state));
        }
        if (!parts.empty()) {
            result.error = fmt::format(
                "{} process(es) still there {} ms after SIGKILL, left behind: {} (state D is uninterruptible sleep: "
                "a hung disk, NFS or FUSE request; they end when the kernel lets go, or at a reboot)",
                parts.size(), options.kill_wait.count(), join(parts, ", "));
        }
        result.rc = 124;
    } else if (WIFEXITED(native_status)) {
        result.rc = WEXITSTATUS(native_status);
    } else if (WIFSIGNALED(native_status)) {
        result.rc = 128 + WTERMSIG(native_status);
    } else {
        result.rc = native_status;
    }
    finish_duration();
    return result;
}

}  // namespace pbs_patch
