// apt-get simulation and held-back parsing on recorded apt 2.6 (Debian 12) output.
#include "fixtures.hpp"
#include "pbs_patch/apt_plan.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace pbs_patch;

namespace {

const PackageChange* find(const AptPlan& plan, const std::string& name) {
    const auto it = std::find_if(plan.changes.begin(), plan.changes.end(), [&](const auto& c) { return c.name == name; });
    return it == plan.changes.end() ? nullptr : &*it;
}

// apt_run_local_repo.txt was recorded from a real `apt-get dist-upgrade`; dpkg's lines came through the pty apt
// gives it, with a CR before each LF and bare CRs between progress updates. The file stores each CR as `^M` (as
// `cat -v` shows it: ansible-test's line-endings check refuses CRs in the repository); this restores the bytes.
std::string with_carriage_returns(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text.compare(i, 2, "^M") == 0) {
            out += '\r';
            ++i;
        } else {
            out += text[i];
        }
    }
    return out;
}

}  // namespace

TEST_CASE("apt -s lines: Inst upgrade, Inst new, Remv, Purg, broken-deps suffix, others ignored") {
    auto c = parse_apt_action_line("Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])");
    REQUIRE(c);
    CHECK(c->name == "base-files");
    CHECK(c->from == "12.4+deb12u11");
    CHECK(c->to == "12.4+deb12u15");
    CHECK(c->action() == "upgrade");
    c = parse_apt_action_line(
        "Inst libperl5.36 [5.36.0-7+deb12u2] (5.36.0-7+deb12u4 Debian-Security:12/oldstable-security [amd64]) [perl:amd64 ]");
    REQUIRE(c);
    CHECK(c->to == "5.36.0-7+deb12u4");
    c = parse_apt_action_line("Inst chrony (4.3-2+deb12u3 Debian:12.15/oldstable [amd64])");
    REQUIRE(c);
    CHECK_FALSE(c->from);
    CHECK(c->to == "4.3-2+deb12u3");
    CHECK(c->action() == "install");
    c = parse_apt_action_line("Remv systemd-timesyncd [252.38-1~deb12u1]");
    REQUIRE(c);
    CHECK(c->from == "252.38-1~deb12u1");
    CHECK_FALSE(c->to);
    CHECK(c->action() == "remove");
    c = parse_apt_action_line("Purg lab-e [1.0]");
    REQUIRE(c);
    CHECK_FALSE(c->to);
    c = parse_apt_action_line("Inst lab-a [1.1] (1.0 localhost [all])");
    REQUIRE(c);
    CHECK(c->action() == "downgrade");
    CHECK_FALSE(parse_apt_action_line("Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])"));
    CHECK_FALSE(parse_apt_action_line("Reading package lists..."));
    CHECK_FALSE(parse_apt_action_line("Inst broken-line"));
    CHECK_FALSE(parse_apt_action_line("Remv no-version"));
}

TEST_CASE("apt -s dist-upgrade on a Debian 12 host: 126 upgrades, nothing held") {
    const auto plan = parse_apt_simulation(fixture("apt_sim_dist_upgrade_bookworm.txt"));
    CHECK(plan.changes.size() == 126);  // "126 upgraded, 0 newly installed, 0 to remove"
    CHECK(plan.held_back.empty());
    CHECK(std::all_of(plan.changes.begin(), plan.changes.end(), [](const auto& c) { return c.action() == "upgrade"; }));
    const auto* login = find(plan, "login");
    REQUIRE(login);
    CHECK(login->from == "1:4.13+dfsg1-1+deb12u1");
    CHECK(login->to == "1:4.13+dfsg1-1+deb12u2");
    CHECK(find(plan, "zip"));
}

TEST_CASE("apt -s dist-upgrade with held packages: kept back list, held ones not in the plan") {
    const auto plan = parse_apt_simulation(fixture("apt_sim_held_back_bookworm.txt"));
    CHECK(plan.held_back == std::vector<std::string>{"bash", "tzdata"});
    CHECK(plan.changes.size() == 124);
    CHECK_FALSE(find(plan, "bash"));
    CHECK_FALSE(find(plan, "tzdata"));
}

TEST_CASE("apt -s with a conflict: one install, one removal") {
    const auto plan = parse_apt_simulation(fixture("apt_sim_install_remove.txt"));
    REQUIRE(plan.changes.size() == 2);
    CHECK(plan.changes[0] == PackageChange{"systemd-timesyncd", "252.38-1~deb12u1", std::nullopt});
    CHECK(plan.changes[1] == PackageChange{"chrony", std::nullopt, "4.3-2+deb12u3"});
    CHECK(plan.held_back.empty());
}

TEST_CASE("apt -s dist-upgrade from a local repository: upgrade, epoch, new, removed, held") {
    const auto plan = parse_apt_simulation(fixture("apt_sim_local_repo.txt"));
    REQUIRE(plan.changes.size() == 4);
    CHECK(plan.changes[0] == PackageChange{"lab-c", "1.0", std::nullopt});
    CHECK(plan.changes[1] == PackageChange{"lab-b", std::nullopt, "1.0"});
    CHECK(plan.changes[2] == PackageChange{"lab-a", "1.0", "1.1"});
    CHECK(plan.changes[3] == PackageChange{"lab-f", "1:2.0~rc1-1", "1:2.0-1"});
    CHECK(plan.held_back == std::vector<std::string>{"lab-d"});
}

TEST_CASE("real dist-upgrade output: held back found, no Inst lines; up-to-date simulation is empty") {
    const auto run = parse_apt_simulation(with_carriage_returns(fixture("apt_run_local_repo.txt")));
    REQUIRE(with_carriage_returns(fixture("apt_run_local_repo.txt")).find("\r\n") != std::string::npos);
    CHECK(run.changes.empty());  // a real run prints no Inst lines: what changed comes from dpkg
    CHECK(run.held_back == std::vector<std::string>{"lab-d"});
    const auto after = parse_apt_simulation(fixture("apt_sim_local_repo_after.txt"));
    CHECK(after.empty());
    CHECK(after.held_back == std::vector<std::string>{"lab-d"});
}

TEST_CASE("held back: wrapped lists, apt 3 header, duplicates, nothing") {
    CHECK(parse_held_back("The following packages have been kept back:\n  a b\n  c\n0 upgraded\n") ==
          std::vector<std::string>{"a", "b", "c"});
    // apt >= 2.9 (Debian 13) prints sections like "Upgrading:" and "Not upgrading:".
    CHECK(parse_held_back("Upgrading:\n  x\n\nNot upgrading:\n  d e\n\nSummary:\n  Upgrading: 1\n") ==
          std::vector<std::string>{"d", "e"});
    CHECK(parse_held_back("The following packages have been kept back:\n  a\nThe following packages have been kept back:\n  a\n") ==
          std::vector<std::string>{"a"});
    CHECK(parse_held_back("").empty());
}

TEST_CASE("a reinstall at the same version is not a change") {
    CHECK(parse_apt_simulation("Inst lab-a [1.0] (1.0 localhost [all])\n").empty());
}
