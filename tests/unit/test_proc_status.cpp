// /proc/<pid>/status parsing on samples recorded on real hosts: a zombie, a process frozen in state D with
// SIGKILL pending, the unattended-upgrades shutdown helper (comm truncated to 15 characters).
#include "fixtures.hpp"
#include "pbs_patch/proc_status.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <unistd.h>

using namespace pbs_patch;

TEST_CASE("/proc status: a zombie (State: Z) is recognised") {
    const auto s = parse_proc_status(fixture("proc_status_zombie.txt"));
    CHECK(s.name == "python3");
    CHECK(s.state == 'Z');
    CHECK(s.state_text == "Z (zombie)");
    CHECK(s.zombie());
    CHECK(s.ppid == 17550);
    CHECK(s.tgid == 17596);
}

TEST_CASE("/proc status: state D with SIGKILL pending (frozen)") {
    const auto s = parse_proc_status(fixture("proc_status_frozen_d.txt"));
    CHECK(s.name == "sleep");
    CHECK(s.uninterruptible());
    CHECK_FALSE(s.zombie());
    CHECK(s.state_text == "D (disk sleep)");
}

TEST_CASE("/proc status: names with spaces, and malformed input") {
    const auto s = parse_proc_status("Name:\tmy prog (x)\nState:\tS (sleeping)\nTgid:\t5\nPPid:\t1\n");
    CHECK(s.name == "my prog (x)");
    CHECK(s.state == 'S');
    CHECK(s.ppid == 1);
    CHECK_THROWS_WITH_AS(parse_proc_status("Name:\tx\nPPid:\t1\n"), doctest::Contains("'State'"), std::runtime_error);
    CHECK_THROWS_WITH_AS(parse_proc_status("Name:\tx\nState:\tR (running)\nPPid:\t99999999999\n"),
                         doctest::Contains("not a process id"), std::runtime_error);
    CHECK_THROWS_AS(parse_proc_status(""), std::runtime_error);
}

TEST_CASE("/proc status: the live reader") {
    const auto self = read_proc_status("/proc", static_cast<int>(::getpid()));
    REQUIRE(self);
    CHECK(self->ppid == static_cast<int>(::getppid()));
    CHECK(self->state == 'R');
    CHECK_FALSE(read_proc_status("/nonexistent", 1));
}
