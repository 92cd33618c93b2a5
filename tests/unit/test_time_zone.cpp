// Time-zone names: known zones from a copy of Debian's zoneinfo (tests/unit/fixtures/zoneinfo), unknown ones
// refused with a clear message instead of silently becoming UTC.
#include "pbs_patch/time_zone.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace pbs_patch;

namespace {
const std::string kZoneinfo = std::string(PBS_PATCH_FIXTURES) + "/zoneinfo";
}

TEST_CASE("known zones pass: TZif files, through a symlink too") {
    CHECK_NOTHROW(check_time_zone("Europe/Berlin", "pve_timezone", kZoneinfo));
    CHECK_NOTHROW(check_time_zone("America/New_York", "pve_timezone", kZoneinfo));
    CHECK_NOTHROW(check_time_zone("UTC", "pve_timezone", kZoneinfo));
    CHECK_NOTHROW(check_time_zone("Etc/UTC", "pve_timezone", kZoneinfo));
}

TEST_CASE("unknown zones are refused naming the zone, whose it is, and what is accepted") {
    for (const char* bad : {"Europe/Berlln", "America/NewYork", "Mars/Olympus", "Europe", "zone.tab", "europe/berlin"}) {
        CAPTURE(bad);
        const std::string expected = std::string("unknown time zone '") + bad + "' (job 'nightly')";
        CHECK_THROWS_WITH_AS(check_time_zone(bad, "job 'nightly'", kZoneinfo), doctest::Contains(expected.c_str()),
                             TimeZoneError);
        CHECK_THROWS_WITH_AS(check_time_zone(bad, "x", kZoneinfo), doctest::Contains("never taken as UTC"),
                             TimeZoneError);
    }
}

TEST_CASE("names that cannot be zones are refused by their spelling") {
    CHECK(time_zone_name_problem("Europe/Berlin").empty());
    CHECK(time_zone_name_problem("Etc/GMT+5").empty());
    CHECK(time_zone_name_problem("America/Port-au-Prince").empty());
    CHECK(time_zone_name_problem("") == "is empty");
    CHECK(time_zone_name_problem("/etc/passwd") == "is an absolute path");
    CHECK(time_zone_name_problem("../../etc/passwd") == "holds '.', which no zone name holds");
    CHECK(time_zone_name_problem("CET-1CEST,M3.5.0,M10.5.0/3") == "is a POSIX TZ rule, not a zone name");
    CHECK(time_zone_name_problem("Europe//Berlin") == "has an empty path component");
    CHECK(time_zone_name_problem("Europe/Berlin ") == "holds ' ', which no zone name holds");
    CHECK_THROWS_WITH_AS(check_time_zone("../../../etc/hostname", "pve_timezone", kZoneinfo),
                         doctest::Contains("holds '.'"), TimeZoneError);
}

TEST_CASE("TZif magic") {
    CHECK(is_tzif("TZif2"));
    CHECK_FALSE(is_tzif("# tzdb"));
    CHECK_FALSE(is_tzif(""));
}
