// One build of the parsers on samples recorded on each lab guest: Debian 12 "bookworm" (apt 2.6, dpkg 1.21,
// systemd 252, PBS 3 stand-in) and Debian 13 "trixie" (apt 3.0, dpkg 1.22, systemd 257, kernel 6.12, PBS 4
// stand-in). Recorded by tests/unit/record_lab_samples.sh with the modules' own commands and options
// (fixtures/*_lab_<suite>.*).
#include "fixtures.hpp"
#include "pbs_patch/apt_activity.hpp"
#include "pbs_patch/apt_plan.hpp"
#include "pbs_patch/calendar.hpp"
#include "pbs_patch/dpkg_audit.hpp"
#include "pbs_patch/dpkg_state.hpp"
#include "pbs_patch/kernels.hpp"
#include "pbs_patch/pbs_versions.hpp"
#include "pbs_patch/systemd_units.hpp"
#include "pbs_patch/text.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

using namespace pbs_patch;

namespace {

struct LabGuest {
    std::string suite;
    std::string pbs_from;  // lab/image/guests/<guest>.conf: pbs_installed, pbs_pending
    std::string pbs_to;
};

const LabGuest kGuests[] = {{"bookworm", "3.2.4-1", "3.2.5-1"}, {"trixie", "4.0.22-1", "4.1.0-1"}};

std::string sample(const LabGuest& g, const std::string& stem, const std::string& ext = ".txt") {
    return fixture(stem + "_lab_" + g.suite + ext);
}

std::string upstream(const std::string& version) { return version.substr(0, version.find('-')); }

}  // namespace

TEST_CASE("lab guests: apt-get -s dist-upgrade, the three pending upgrades (both archives)") {
    for (const auto& g : kGuests) {
        CAPTURE(g.suite);
        const auto plan = parse_apt_simulation(sample(g, "apt_sim"));
        REQUIRE(plan.changes.size() == 3);
        CHECK(plan.changes[0] == PackageChange{"pbs-lab-conffile", "1.0-1", "1.1-1"});
        CHECK(plan.changes[1] == PackageChange{"pbs-lab-kernel", "1.0-1", "1.1-1"});
        CHECK(plan.changes[2] == PackageChange{"proxmox-backup-server", g.pbs_from, g.pbs_to});
        CHECK(plan.held_back.empty());
    }
}

TEST_CASE("lab guests: a held package is kept back, in the simulation and in the real run") {
    for (const auto& g : kGuests) {
        CAPTURE(g.suite);
        const auto sim = parse_apt_simulation(sample(g, "apt_sim_held"));
        CHECK(sim.held_back == std::vector<std::string>{"pbs-lab-kernel"});
        REQUIRE(sim.changes.size() == 2);
        CHECK(sim.changes[1] == PackageChange{"proxmox-backup-server", g.pbs_from, g.pbs_to});
        const auto run = parse_apt_simulation(sample(g, "apt_run_held"));
        CHECK(run.changes.empty());  // a real run prints no Inst lines: what changed comes from dpkg
        CHECK(run.held_back == std::vector<std::string>{"pbs-lab-kernel"});
    }
}

TEST_CASE("lab guests: dpkg state before and after that run, exactly the two upgraded packages") {
    for (const auto& g : kGuests) {
        CAPTURE(g.suite);
        const auto before = parse_dpkg_state(sample(g, "dpkg_state", "_before.tsv"));
        const auto after = parse_dpkg_state(sample(g, "dpkg_state", "_after.tsv"));
        CHECK(before.size() > 150);
        REQUIRE(before.contains("pbs-lab-kernel"));
        CHECK(before.at("pbs-lab-kernel").status == "hi ");  // apt-mark hold
        CHECK(before.at("proxmox-backup-server").status == "ii ");
        CHECK(before.at("proxmox-backup-server").arch == "amd64");
        CHECK(before.contains("libc6"));
        const auto changes = diff_dpkg_states(before, after);
        REQUIRE(changes.size() == 2);
        CHECK(changes[0] == PackageChange{"pbs-lab-conffile", "1.0-1", "1.1-1"});
        CHECK(changes[1] == PackageChange{"proxmox-backup-server", g.pbs_from, g.pbs_to});
    }
}

TEST_CASE("lab guests: dpkg --audit names the half-configured package") {
    for (const auto& g : kGuests) {
        CAPTURE(g.suite);
        // the sample ends with the exit code dpkg --audit gave: "(exit N)"
        auto lines = split_lines(sample(g, "dpkg_audit"));
        REQUIRE(!lines.empty());
        const std::string last = lines.back();
        REQUIRE(starts_with(last, "(exit "));
        lines.pop_back();
        ProcessResult r;
        r.started = true;
        r.rc = std::stoi(last.substr(6));
        r.out = join(lines, "\n") + "\n";
        const auto a = interpret_dpkg_audit(r);
        CHECK(a.readable);
        CHECK_FALSE(a.consistent());
        CHECK(a.findings.find("pbs-lab-failonce") != std::string::npos);
        CHECK(a.findings.find("half configured") != std::string::npos);
    }
}

TEST_CASE("lab guests: /proc/locks with a live holder of both dpkg locks") {
    for (const auto& g : kGuests) {
        CAPTURE(g.suite);
        const std::string text = sample(g, "proc_locks");
        // first line: "# holder pid P, inodes: lock-frontend A lock B, device D" (what the recording saw)
        const auto words = split_ws(split_lines(text).front());
        REQUIRE(words.size() == 11);
        const int pid = std::stoi(words[3].substr(0, words[3].size() - 1));
        const auto frontend = std::stoull(words[6]);
        const auto lock = std::stoull(words[8]);  // "13344," (stoull stops at the comma)
        const auto locks = parse_proc_locks(text);  // the comment line is not a lock
        for (const auto inode : {frontend, lock}) {
            const auto it = std::find_if(locks.begin(), locks.end(), [&](const auto& l) { return l.inode == inode; });
            REQUIRE(it != locks.end());
            CHECK(it->pid == pid);
            CHECK(it->kind == "POSIX");
            CHECK(it->access == "WRITE");
            CHECK(it->major == 0xfe);  // virtio disk /dev/vda (254:0)
            CHECK(it->minor == 0);
        }
    }
}

TEST_CASE("lab guests: systemctl show of the PBS units, healthy, a failing proxy, and other states") {
    for (const auto& g : kGuests) {
        CAPTURE(g.suite);
        const std::vector<std::string> pbs{"proxmox-backup", "proxmox-backup-proxy"};
        for (const auto& u : parse_unit_states(pbs, sample(g, "systemctl_show_pbs_healthy"))) {
            CHECK(u.healthy());
            CHECK(u.sub_state == "running");
        }
        const auto failing = parse_unit_states(pbs, sample(g, "systemctl_show_pbs_proxy_failed"));
        REQUIRE(failing.size() == 2);
        CHECK(failing[0].healthy());
        CHECK_FALSE(failing[1].healthy());
        CHECK(starts_with(failing[1].problem(), "not active ("));  // failed, or activating again (Restart=on-failure)
        CHECK(failing[1].enabled());
        const auto states = parse_unit_states({"proxmox-backup", "pbsrec-failed", "pbsrec-idle", "pbsrec-masked", "pbs-nosuch"},
                                              sample(g, "systemctl_show_states"));
        REQUIRE(states.size() == 5);
        CHECK(states[0].healthy());
        CHECK(states[1].problem() == "not active (failed/failed)");
        CHECK(states[2].problem() == "not active (inactive/dead), not enabled (disabled)");
        CHECK(states[3].problem() == "masked");
        CHECK(states[4].problem() == "not found (no such unit file)");
    }
}

TEST_CASE("lab guests: systemd-analyze calendar, UTC and Europe/Berlin") {
    for (const auto& g : kGuests) {
        CAPTURE(g.suite);
        const auto utc = parse_systemd_calendar_output(sample(g, "systemd_calendar"));
        REQUIRE(utc.size() == 5);
        CHECK(utc[0].normalized == "Mon..Fri *-*-* 02:00:00");
        REQUIRE(utc[0].elapses.size() == 3);
        CHECK(utc[0].elapses[0].utc == *parse_utc_datetime("2026-11-30", "02:00:00"));
        CHECK(utc[1].elapses[0].utc == 1795770000 + 3600);
        CHECK(utc[2].elapses[0].utc == 1795770000 + 15 * 60);
        CHECK(utc[3].elapses[1].utc == *parse_utc_datetime("2026-11-28", "02:30:00"));
        CHECK(utc[4].elapses.empty());
        const auto berlin = parse_systemd_calendar_output(sample(g, "systemd_calendar_berlin"));
        REQUIRE(berlin.size() == 2);
        CHECK(berlin[0].elapses[0].local_text == "Mon 2026-11-30 02:00:00 CET");
        CHECK(berlin[0].elapses[0].utc == *parse_utc_datetime("2026-11-30", "01:00:00"));
        CHECK(berlin[1].elapses[1].utc == *parse_utc_datetime("2026-11-29", "03:00:00"));
    }
}

TEST_CASE("lab guests: the PBS stand-in's versions (PBS 3 and PBS 4) and the kernels in /boot") {
    for (const auto& g : kGuests) {
        CAPTURE(g.suite);
        const auto v = parse_pbs_versions(sample(g, "pbs_versions", ".json"));
        REQUIRE(v.size() == 1);
        CHECK(v[0].old_version == g.pbs_from);
        CHECK(v[0].version == g.pbs_to);  // the APT candidate
        CHECK(running_pbs_version(v) == upstream(g.pbs_from));
        // "uname -r" then "ls /boot": the direct-boot kernel is the newest installed one
        auto lines = split_lines(sample(g, "boot"));
        const std::string running = lines.front();
        lines.erase(lines.begin());
        const auto k = kernel_status(running, lines);
        CHECK(k.installed == std::vector<std::string>{running});
        CHECK(k.pending() == false);
    }
}

TEST_CASE("kernel releases: Debian 13 and PBS 4 names sort newest first") {
    CHECK(kernel_releases_from_names({"vmlinuz-6.12.41+deb13-amd64", "vmlinuz-6.12.117+deb13-cloud-amd64",
                                      "System.map-6.12.117+deb13-cloud-amd64", "config-6.12.41+deb13-amd64"}) ==
          std::vector<std::string>{"6.12.117+deb13-cloud-amd64", "6.12.41+deb13-amd64"});
    // Proxmox kernels of PBS 4 (proxmox-kernel-6.14 and the 6.17 default of PBS 4.1)
    const auto pve = kernel_status("6.14.11-4-pve", {"vmlinuz-6.14.11-4-pve", "vmlinuz-6.17.2-1-pve", "vmlinuz-6.14.8-2-pve"});
    CHECK(pve.newest == "6.17.2-1-pve");
    CHECK(pve.pending() == true);
}
