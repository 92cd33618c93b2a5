// Civil time conversions shared by the calendar and window parsers.
#include "pbs_patch/civil_time.hpp"
#include "pbs_patch/system_info.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;

TEST_CASE("civil time as UTC") {
    CHECK(utc_to_epoch({1970, 1, 1, 0, 0, 0}) == 0);
    CHECK(utc_to_epoch({2025, 11, 27, 9, 30, 0}) == 1764235800);
    CHECK(utc_iso(utc_to_epoch({2026, 3, 29, 1, 59, 59})) == "2026-03-29T01:59:59Z");
}

TEST_CASE("civil time ranges") {
    CHECK(CivilTime{2026, 12, 31, 23, 59, 60}.in_range());
    CHECK_FALSE(CivilTime{2026, 13, 1, 0, 0, 0}.in_range());
    CHECK_FALSE(CivilTime{2026, 1, 0, 0, 0, 0}.in_range());
    CHECK_FALSE(CivilTime{2026, 1, 1, 24, 0, 0}.in_range());
    CHECK_FALSE(CivilTime{2026, 1, 1, 0, 60, 0}.in_range());
}
