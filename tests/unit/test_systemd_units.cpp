// systemctl show parsing on output recorded on the lab's Debian 12 guest (systemd 252): the PBS units, and
// throwaway units made failed, inactive/disabled, masked, plus a name with no unit.
#include "fixtures.hpp"
#include "pbs_patch/systemd_units.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;

TEST_CASE("systemctl show: the two PBS daemons, active and enabled") {
    const auto units = parse_unit_states({"proxmox-backup", "proxmox-backup-proxy"}, fixture("systemctl_show_pbs_healthy.txt"));
    REQUIRE(units.size() == 2);
    CHECK(units[0].id == "proxmox-backup.service");
    CHECK(units[1].id == "proxmox-backup-proxy.service");
    for (const auto& u : units) {
        CHECK(u.healthy());
        CHECK(u.problem().empty());
        CHECK(u.sub_state == "running");
    }
    CHECK(units[0].to_json()["problem"].is_null());
}

TEST_CASE("systemctl show: the proxy still starting (lab fault slow-proxy) is settling, not judged yet") {
    const auto units = parse_unit_states({"proxmox-backup", "proxmox-backup-proxy"},
                                         fixture("systemctl_show_pbs_proxy_activating.txt"));
    REQUIRE(units.size() == 2);
    CHECK_FALSE(units[0].settling());
    CHECK(units[1].settling());
    CHECK(units[1].active_state == "activating");
    CHECK(units[1].problem() == "not active (activating/start)");
    UnitState u = units[1];
    u.active_state = "activating";
    u.sub_state = "auto-restart";  // Restart=on-failure waiting for its next start
    CHECK(u.settling());
    u.active_state = "failed";
    u.sub_state = "failed";
    CHECK_FALSE(u.settling());
    const std::vector<std::string> transitional{"deactivating", "reloading", "refreshing"};
    for (const auto& state : transitional) {
        UnitState t;
        t.active_state = state;
        CHECK(t.settling());
    }
}

TEST_CASE("systemctl show: the proxy refusing to start (lab fault proxy-fails)") {
    const auto units =
        parse_unit_states({"proxmox-backup", "proxmox-backup-proxy"}, fixture("systemctl_show_pbs_proxy_failed.txt"));
    REQUIRE(units.size() == 2);
    CHECK(units[0].healthy());
    CHECK_FALSE(units[1].healthy());
    CHECK(units[1].problem() == "not active (failed/failed)");
}

TEST_CASE("systemctl show: failed, inactive/disabled, masked and not-found units each named with their states") {
    const std::vector<std::string> names{"proxmox-backup", "pbsrec-failed", "pbsrec-idle", "pbsrec-masked", "pbs-nosuch"};
    const auto units = parse_unit_states(names, fixture("systemctl_show_states.txt"));
    REQUIRE(units.size() == 5);
    CHECK(units[0].healthy());

    CHECK_FALSE(units[1].healthy());
    CHECK(units[1].enabled());
    CHECK(units[1].active_state == "failed");
    CHECK(units[1].problem() == "not active (failed/failed)");

    CHECK_FALSE(units[2].active());
    CHECK_FALSE(units[2].enabled());
    CHECK(units[2].problem() == "not active (inactive/dead), not enabled (disabled)");

    CHECK(units[3].load_state == "masked");
    CHECK(units[3].unit_file_state == "masked");
    CHECK(units[3].problem() == "masked");

    CHECK(units[4].load_state == "not-found");
    CHECK(units[4].unit_file_state.empty());
    CHECK(units[4].problem() == "not found (no such unit file)");
    const auto j = units[4].to_json();
    CHECK(j["name"] == "pbs-nosuch");
    CHECK(j["id"] == "pbs-nosuch.service");
    CHECK(j["healthy"] == false);
}

TEST_CASE("systemctl show: enabled-runtime counts as enabled, static does not") {
    UnitState u{"x", "x.service", "loaded", "active", "running", "enabled-runtime"};
    CHECK(u.healthy());
    u.unit_file_state = "static";
    CHECK_FALSE(u.healthy());
    CHECK(u.problem() == "not enabled (static)");
    u.active_state = "activating";
    u.sub_state = "start";
    CHECK(u.problem() == "not active (activating/start), not enabled (static)");
}

TEST_CASE("systemctl show: block count must match, Id/LoadState/ActiveState required") {
    CHECK_THROWS_AS(parse_unit_states({"a", "b"}, "Id=a.service\nLoadState=loaded\nActiveState=active\n"), UnitStateError);
    CHECK_THROWS_AS(parse_unit_states({"a"}, "Id=a.service\nActiveState=active\n"), UnitStateError);
    CHECK_THROWS_AS(parse_unit_states({"a"}, ""), UnitStateError);
    // CRLF, stray blank lines and a missing UnitFileState are tolerated (an empty state is never enabled).
    const auto u = parse_unit_states({"a"}, "\n\nId=a.service\r\nLoadState=loaded\r\nActiveState=active\r\nSubState=running\r\n\n");
    REQUIRE(u.size() == 1);
    CHECK_FALSE(u[0].enabled());
}

TEST_CASE("systemctl show: values may contain '='") {
    const auto blocks = parse_systemctl_show("Id=a.service\nDescription=x=y\n");
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0].at("Description") == "x=y");
}
