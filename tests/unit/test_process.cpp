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
