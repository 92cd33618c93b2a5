// dpkg-query snapshots and their difference, on a real before/after pair (dpkg --root sandbox, apt-get
// dist-upgrade from a local repository: the same run as apt_run_local_repo.txt).
#include "fixtures.hpp"
#include "pbs_patch/dpkg_state.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;

TEST_CASE("dpkg state: present packages kept, config-files-only dropped, holds kept") {
    const auto before = parse_dpkg_state(fixture("dpkg_state_before.tsv"));
    CHECK(before.size() == 4);  // lab-e is "rc": removed, only its conffile remains
    CHECK_FALSE(before.contains("lab-e"));
    REQUIRE(before.contains("lab-d"));
    CHECK(before.at("lab-d").status == "hi ");
    CHECK(before.at("lab-f").version == "1:2.0~rc1-1");
    const auto host = parse_dpkg_state(fixture("dpkg_state_host_sample.tsv"));
    CHECK(host.size() == 6);
    CHECK(host.at("libc6").arch == "amd64");
    CHECK(host.at("tzdata").version == "2025b-0+deb12u2");
}

TEST_CASE("dpkg state diff: exactly what the dist-upgrade changed") {
    const auto before = parse_dpkg_state(fixture("dpkg_state_before.tsv"));
    const auto after = parse_dpkg_state(fixture("dpkg_state_after.tsv"));
    const auto changes = diff_dpkg_states(before, after);
    REQUIRE(changes.size() == 4);
    CHECK(changes[0] == PackageChange{"lab-a", "1.0", "1.1"});
    CHECK(changes[1] == PackageChange{"lab-b", std::nullopt, "1.0"});
    CHECK(changes[2] == PackageChange{"lab-c", "1.0", std::nullopt});
    CHECK(changes[3] == PackageChange{"lab-f", "1:2.0~rc1-1", "1:2.0-1"});
    const auto j = changes[1].to_json();
    CHECK(j["from"].is_null());
    CHECK(j["to"] == "1.0");
    CHECK(j["action"] == "install");
    CHECK(changes[2].to_json()["to"].is_null());
    CHECK(diff_dpkg_states(after, after).empty());
}

TEST_CASE("dpkg state: half-configured and unpacked count as present; not-installed does not") {
    const auto s = parse_dpkg_state("a\tall\t1.0\tiF \nb\tall\t2.0\tiU \nc\tall\t\tun \nd\tall\t1\tpc \n");
    CHECK(s.size() == 2);
    CHECK(s.contains("a"));
    CHECK(s.contains("b"));
}

TEST_CASE("dpkg state: a name present for two architectures is keyed name:arch") {
    const auto before = parse_dpkg_state("libc6\tamd64\t2.36-9+deb12u13\tii \nlibc6\ti386\t2.36-9+deb12u13\tii \nbash\tamd64\t5.2\tii \n");
    CHECK(before.contains("libc6:amd64"));
    CHECK(before.contains("libc6:i386"));
    CHECK(before.contains("bash"));
    const auto after = parse_dpkg_state("libc6\tamd64\t2.36-9+deb12u14\tii \nlibc6\ti386\t2.36-9+deb12u14\tii \nbash\tamd64\t5.2\tii \n");
    const auto changes = diff_dpkg_states(before, after);
    REQUIRE(changes.size() == 2);
    CHECK(changes[0].name == "libc6:amd64");
    CHECK(changes[1].name == "libc6:i386");
}

TEST_CASE("dpkg state: malformed lines are refused, blank lines ignored") {
    CHECK(parse_dpkg_state("\n\n").empty());
    CHECK_THROWS_AS(parse_dpkg_state("bash 5.2 ii\n"), DpkgStateError);
    CHECK_THROWS_AS(parse_dpkg_state("bash\tamd64\t5.2\n"), DpkgStateError);
    CHECK_THROWS_AS(parse_dpkg_state("dpkg-query: no packages found matching x\n"), DpkgStateError);
}

TEST_CASE("package diff for Ansible's --diff") {
    const std::vector<PackageChange> changes{{"a", "1.0", "1.1"}, {"b", std::nullopt, "2"}, {"c", "3", std::nullopt}};
    const auto d = package_diff(changes);
    CHECK(d["before"] == "a 1.0\nc 3\n");
    CHECK(d["after"] == "a 1.1\nb 2\n");
}
