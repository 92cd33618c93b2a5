// The process runner: argv only, environment, capture, and a timeout that ends the whole group.
#include "pbs_patch/process.hpp"
#include "pbs_patch/text.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace pbs_patch;
using namespace std::chrono_literals;

namespace {

// Alive means: exists and is not a zombie.
bool alive(pid_t pid) {
    if (::kill(pid, 0) != 0) return false;
    try {
        const auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
        const auto close = stat.rfind(')');
        return close != std::string::npos && stat.size() > close + 2 && stat[close + 2] != 'Z';
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace

TEST_CASE("captures stdout, stderr and the exit code") {
    const auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
    CHECK(r.started);
    CHECK(r.rc == 3);
    CHECK(r.out == "out\n");
    CHECK(r.err == "err\n");
    CHECK_FALSE(r.timed_out);
}

TEST_CASE("arguments are passed verbatim, never through a shell") {
    const auto r = run_process({"printf", "%s|", "a b", "$(id)", "; rm -rf /", "*"});
    CHECK(r.rc == 0);
    CHECK(r.out == "a b|$(id)|; rm -rf /|*|");
}

TEST_CASE("environment: C locale and non-interactive by default, overrides apply") {
    auto r = run_process({"sh", "-c", "echo $LC_ALL $DEBIAN_FRONTEND"});
    CHECK(r.out == "C noninteractive\n");
    RunOptions options;
    options.env["PBS_PATCH_TEST"] = "yes";
    r = run_process({"sh", "-c", "echo $PBS_PATCH_TEST $LC_ALL"}, options);
    CHECK(r.out == "yes C\n");
}

TEST_CASE("missing commands report 127 without starting") {
    const auto r = run_process({"/nonexistent/command"});
    CHECK_FALSE(r.started);
    CHECK(r.rc == 127);
    CHECK(r.error.find("command not found") != std::string::npos);
    CHECK(run_process({"no-such-command-pbs-patch"}).rc == 127);
    CHECK(run_process({}).rc == 127);
}

TEST_CASE("killed by a signal reports 128+N") {
    const auto r = run_process({"sh", "-c", "kill -KILL $$"});
    CHECK(r.rc == 128 + SIGKILL);
}

TEST_CASE("large output keeps the tail") {
    RunOptions options;
    options.max_output_bytes = 1000;
    const auto r = run_process({"sh", "-c", "seq 1 100000"}, options);
    CHECK(r.rc == 0);
    CHECK(r.out.size() == 1000);
    CHECK(r.out.substr(r.out.size() - 7) == "100000\n");
}

namespace {

// Runs `script` (which appends the PIDs of the child and its grandchild to the file named by
// `{pids}`) under a 1 s timeout, then checks that it timed out and that neither process is alive.
void check_timeout_ends_tree(const std::string& script_template) {
    const auto dir = std::filesystem::temp_directory_path() / ("pbs_patch_proc_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto pids = (dir / "pids").string();
    std::string script = script_template;
    for (auto at = script.find("{pids}"); at != std::string::npos; at = script.find("{pids}")) {
        script.replace(at, 6, pids);
    }
    RunOptions options;
    options.timeout = 1s;
    options.kill_grace = 500ms;
    const auto r = run_process({"sh", "-c", script}, options);
    CHECK(r.timed_out);
    CHECK(r.rc == 124);
    CHECK(r.duration_s >= 1.0);
    CHECK(r.duration_s < 15.0);
    const auto lines = split_lines(read_file(pids));
    REQUIRE(lines.size() == 2);
    for (const auto& line : lines) {
        const pid_t pid = std::stoi(line);
        CAPTURE(pid);
        CHECK_FALSE(alive(pid));
    }
    std::filesystem::remove_all(dir);
}

}  // namespace

TEST_CASE("timeout ends the whole process group, grandchild ignoring SIGTERM included") {
    check_timeout_ends_tree(
        "sh -c 'trap \"\" TERM; echo $$ >> {pids}; while :; do sleep 1; done' & "
        "echo $$ >> {pids}; trap '' TERM; wait");
}

TEST_CASE("timeout with a well-behaved child ends at SIGTERM, before the grace period") {
    RunOptions options;
    options.timeout = 300ms;
    options.kill_grace = 20s;
    const auto r = run_process({"sleep", "30"}, options);
    CHECK(r.timed_out);
    CHECK(r.rc == 124);
    CHECK(r.duration_s < 5.0);
}

TEST_CASE("a background process holding stdout does not hang a finished command") {
    RunOptions options;
    options.timeout = 30s;
    const auto r = run_process({"sh", "-c", "sleep 4 & echo done"}, options);
    CHECK(r.rc == 0);
    CHECK(r.out == "done\n");
    CHECK(r.duration_s < 4.0);
    CHECK_FALSE(r.timed_out);
}

TEST_CASE("timeout also ends descendants that left the group (new session, as dpkg on apt's pty)") {
    // setsid puts the grandchild in a new session and process group; it also ignores SIGTERM.
    check_timeout_ends_tree(
        "setsid sh -c 'trap \"\" TERM; echo $$ >> {pids}; while :; do sleep 1; done' & "
        "echo $$ >> {pids}; wait");
}

TEST_CASE("output capture: cost linear in the output's size (bytes moved by trimming), the tail kept") {
    // 64 MiB through a 1 MiB tail in 64 KiB reads, as the runner reads a pipe: before, every read past the
    // limit moved the whole tail (64 GiB of copying here); now each byte is moved at most once.
    OutputTail tail(1 << 20);
    std::string chunk(64 * 1024, 'x');
    const std::size_t chunks = 1024;
    for (std::size_t i = 0; i < chunks; ++i) {
        chunk.back() = static_cast<char>('a' + i % 26);
        tail.append(chunk.data(), chunk.size());
    }
    CHECK(tail.total() == chunks * chunk.size());
    CHECK(tail.bytes_moved() <= tail.total());
    const auto out = tail.take();
    CHECK(out.size() == (1U << 20));
    CHECK(out.back() == static_cast<char>('a' + (chunks - 1) % 26));
    // A single read larger than the limit, and a zero limit.
    OutputTail small(4);
    small.append("0123456789", 10);
    CHECK(small.take() == "6789");
    OutputTail none(0);
    none.append("abc", 3);
    CHECK(none.take().empty());
    CHECK(none.total() == 3);
}

TEST_CASE("the runner captures a large output whole when under the limit") {
    RunOptions options;
    options.max_output_bytes = 32 * 1024 * 1024;
    const auto r = run_process({"sh", "-c", "head -c 20000000 /dev/zero"}, options);
    CHECK(r.rc == 0);
    CHECK(r.out.size() == 20000000U);
}

namespace {

// A cgroup v1 freezer group of our own: a frozen task is in state D and does not die of SIGKILL until thawed,
// which is what a process stuck on a hung disk or NFS server looks like to the runner.
struct FreezerGroup {
    std::filesystem::path dir;
    bool usable = false;
    FreezerGroup() {
        const std::filesystem::path root = "/sys/fs/cgroup/freezer";
        std::error_code ec;
        if (!std::filesystem::exists(root / "freezer.state", ec) && !std::filesystem::exists(root / "tasks", ec)) return;
        dir = root / ("pbs_patch_test_" + std::to_string(::getpid()));
        usable = std::filesystem::create_directory(dir, ec) || std::filesystem::exists(dir / "freezer.state", ec);
    }
    void thaw() const { std::ofstream(dir / "freezer.state") << "THAWED\n"; }
    ~FreezerGroup() {
        if (!usable) return;
        thaw();
        std::error_code ec;
        for (int i = 0; i < 500 && !std::filesystem::remove(dir, ec); ++i) std::this_thread::sleep_for(10ms);
    }
};

}  // namespace

TEST_CASE("a child stuck in state D after SIGKILL does not hang the runner: bounded and reported") {
    FreezerGroup group;
    if (!group.usable) {
        MESSAGE("skipped: no writable cgroup v1 freezer (/sys/fs/cgroup/freezer) to put a child in state D");
        return;
    }
    // The child ignores SIGTERM and freezes itself at once; SIGKILL comes 5 s later, then the runner waits 1 s.
    const std::string script = "trap '' TERM; echo $$ > " + (group.dir / "cgroup.procs").string() +
                               "; echo FROZEN > " + (group.dir / "freezer.state").string() + "; sleep 600";
    RunOptions options;
    options.timeout = 3s;
    options.kill_grace = 2s;
    options.kill_wait = 1s;
    const auto r = run_process({"sh", "-c", script}, options);
    CHECK(r.timed_out);
    CHECK(r.rc == 124);
    REQUIRE_MESSAGE(r.left_behind.size() == 1, r.error);
    const auto stuck = r.left_behind.front();
    CHECK(stuck.comm == "sh");
    CHECK(stuck.state == "D (disk sleep)");
    CHECK(r.error.find("pid " + std::to_string(stuck.pid) + " (sh, state D (disk sleep))") != std::string::npos);
    CHECK(r.error.find("left behind") != std::string::npos);
    // Once the kernel lets go (thawed), the pending SIGKILL ends it: nothing outlives the test.
    group.thaw();
    int status = 0;
    REQUIRE(::waitpid(stuck.pid, &status, 0) == stuck.pid);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
}
