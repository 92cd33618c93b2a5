// Calendar events: proxmox-time -> systemd normalisation, and the parser of `systemd-analyze calendar` on
// outputs recorded on this machine (systemd 252, Debian 12). The recording commands are given per fixture.
#include "fixtures.hpp"
#include "pbs_patch/calendar.hpp"

#include <doctest/doctest.h>

#include <cstdlib>

using namespace pbs_patch;

TEST_CASE("normalize_calendar_event: what systemd already reads is kept") {
    for (const char* e : {"daily", "hourly", "semi-annually", "mon..fri 02:00", "*:0/15", "2,22:30", "sat *-1..7 15:00",
                          "2015-10-21", "mon..fri 8..17,22:0/15", "12/2:5", "*-05"}) {
        CAPTURE(e);
        const std::string n = normalize_calendar_event(e);
        // Only weekday spelling may change (systemd prints its own short names anyway).
        CHECK(n == std::string(e));
    }
}

TEST_CASE("normalize_calendar_event: proxmox-time's wrap-around weekday ranges become lists") {
    CHECK(normalize_calendar_event("fri..mon 23:30") == "fri,sat,sun,mon 23:30");
    CHECK(normalize_calendar_event("sun..sat") == "sun,mon,tue,wed,thu,fri,sat");
    CHECK(normalize_calendar_event("Saturday..Monday 1:00") == "sat,sun,mon 1:00");
    CHECK(normalize_calendar_event("MON..WED,fri 3:00") == "mon..wed,fri 3:00");
}

TEST_CASE("normalize_calendar_event: `*/N` gets the field's first value") {
    CHECK(normalize_calendar_event("*:*/5") == "*:0/5");
    CHECK(normalize_calendar_event("*/2:00") == "0/2:00");
    CHECK(normalize_calendar_event("*-*/2-01 04:00") == "*-1/2-01 04:00");
    CHECK(normalize_calendar_event("*/3-01") == "1/3-01");
    CHECK_THROWS_WITH_AS(normalize_calendar_event("*/2-01-01"), doctest::Contains("repetition of years"), CalendarError);
}

TEST_CASE("normalize_calendar_event: refuses what it cannot map") {
    CHECK_THROWS_AS(normalize_calendar_event(""), CalendarError);
    CHECK_THROWS_WITH_AS(normalize_calendar_event("funday 02:00"), doctest::Contains("'funday' is not a weekday"),
                         CalendarError);
}

TEST_CASE("weekday_mask: lists, ranges, wrap-around, long names") {
    CHECK(weekday_mask("mon") == 0x01U);
    CHECK(weekday_mask("sun") == 0x40U);
    CHECK(weekday_mask("mon..fri") == 0x1FU);
    CHECK(weekday_mask("sat,sun") == 0x60U);
    CHECK(weekday_mask("fri..mon") == (0x10U | 0x20U | 0x40U | 0x01U));
    CHECK(weekday_mask("sunday..saturday") == 0x7FU);
    CHECK_THROWS_AS(weekday_mask("xyz"), CalendarError);
}

// systemd-analyze calendar --iterations=3 --base-time=@1795770000 'mon..fri 02:00' 'hourly' '*:0/15' '2,22:30'
//   '2015-10-21'   (host zone UTC; base = Fri 2026-11-27 09:00:00 UTC)
TEST_CASE("parse_systemd_calendar_output: UTC host, several events, a date in the past") {
    const auto out = parse_systemd_calendar_output(fixture("systemd_calendar_utc.txt"));
    REQUIRE(out.size() == 5);
    CHECK(out[0].original == "mon..fri 02:00");
    CHECK(out[0].normalized == "Mon..Fri *-*-* 02:00:00");
    REQUIRE(out[0].elapses.size() == 3);
    CHECK(out[0].elapses[0].utc == *parse_utc_datetime("2026-11-30", "02:00:00"));
    CHECK(out[0].elapses[0].local_text == "Mon 2026-11-30 02:00:00 UTC");
    CHECK(out[0].elapses[2].utc == *parse_utc_datetime("2026-12-02", "02:00:00"));
    CHECK(out[1].elapses[0].utc == 1795770000 + 3600);
    CHECK(out[2].elapses[0].utc == 1795770000 + 15 * 60);
    CHECK(out[3].normalized == "*-*-* 02,22:30:00");
    CHECK(out[3].elapses[1].utc == *parse_utc_datetime("2026-11-28", "02:30:00"));
    CHECK(out[4].original == "2015-10-21");
    CHECK(out[4].elapses.empty());  // "Next elapse: never"
}

// TZ=Europe/Berlin systemd-analyze calendar --iterations=2 --base-time=@1795770000 'mon..fri 02:00' 'sat,sun 4:00'
TEST_CASE("parse_systemd_calendar_output: the (in UTC) lines win over the local time") {
    const auto out = parse_systemd_calendar_output(fixture("systemd_calendar_berlin.txt"));
    REQUIRE(out.size() == 2);
    CHECK(out[0].elapses[0].local_text == "Mon 2026-11-30 02:00:00 CET");
    CHECK(out[0].elapses[0].utc == *parse_utc_datetime("2026-11-30", "01:00:00"));
    CHECK(out[1].elapses[1].utc == *parse_utc_datetime("2026-11-29", "03:00:00"));
}

// TZ=Europe/Berlin systemd-analyze calendar --iterations=3 --base-time=@1774744200 '*-*-* 02:30'
// (base 2026-03-29 00:30 UTC: 02:30 does not exist that night; systemd goes to the next day, in CEST).
TEST_CASE("parse_systemd_calendar_output: across the spring DST change") {
    const auto out = parse_systemd_calendar_output(fixture("systemd_calendar_berlin_dst.txt"));
    REQUIRE(out.size() == 1);
    CHECK(out[0].elapses[0].local_text == "Mon 2026-03-30 02:30:00 CEST");
    CHECK(out[0].elapses[0].utc == *parse_utc_datetime("2026-03-30", "00:30:00"));
}

// TZ=America/New_York systemd-analyze calendar --iterations=1 --base-time=@1795770000 'daily'
TEST_CASE("parse_systemd_calendar_output: west of UTC") {
    const auto out = parse_systemd_calendar_output(fixture("systemd_calendar_new_york.txt"));
    REQUIRE(out.size() == 1);
    CHECK(out[0].elapses[0].utc == *parse_utc_datetime("2026-11-28", "05:00:00"));
}

TEST_CASE("parse_systemd_calendar_output: garbage is an error, never 'no job'") {
    CHECK_THROWS_AS(parse_systemd_calendar_output("Failed to parse calendar specification 'x': Invalid argument"),
                    CalendarError);
    CHECK_THROWS_AS(parse_systemd_calendar_output("    Next elapse: Mon 2026-11-30 02:00:00 UTC"), CalendarError);
    CHECK_THROWS_AS(parse_systemd_calendar_output("  Original form: x\n    Next elapse: soon"), CalendarError);
    CHECK(parse_systemd_calendar_output("").empty());
}

TEST_CASE("parse_utc_datetime") {
    CHECK(parse_utc_datetime("1970-01-01", "00:00:00") == 0);
    CHECK(parse_utc_datetime("2026-11-27", "09:00:00") == 1795770000);
    CHECK_FALSE(parse_utc_datetime("2026-13-01", "00:00:00"));
    CHECK_FALSE(parse_utc_datetime("2026-11-27", "09:00"));
}

// The oracle itself, when this host has it (it does without systemd as PID 1).
TEST_CASE("next_elapses: systemd-analyze agrees with the recorded sample, normalised events evaluate") {
    CalendarProbeOptions o;
    o.systemd_analyze = "systemd-analyze";
    o.iterations = 2;
    o.timezone = "UTC";
    CalendarAnalysis a;
    try {
        a = next_elapses("mon..fri 02:00", 1795770000, o);
    } catch (const CalendarError& e) {
        if (std::string(e.what()).find("cannot run") != std::string::npos) {
            MESSAGE("systemd-analyze not available: skipped");
            return;
        }
        throw;
    }
    REQUIRE(a.elapses.size() == 2);
    CHECK(a.elapses[0].utc == *parse_utc_datetime("2026-11-30", "02:00:00"));
    // fri..mon (refused by systemd as written) after normalisation: Fri 23:30 is the next start.
    const auto wrap = next_elapses("fri..mon 23:30", 1795770000, o);
    CHECK(wrap.elapses[0].utc == *parse_utc_datetime("2026-11-27", "23:30:00"));
    CHECK(wrap.elapses[1].utc == *parse_utc_datetime("2026-11-28", "23:30:00"));
    o.timezone = "Europe/Berlin";
    const auto berlin = next_elapses("mon..fri 02:00", 1795770000, o);
    CHECK(berlin.elapses[0].utc == *parse_utc_datetime("2026-11-30", "01:00:00"));
    CHECK_THROWS_WITH_AS(next_elapses("mon..fri 25:00", 1795770000, o), doctest::Contains("systemd cannot evaluate"),
                         CalendarError);
    CHECK(next_elapses("2015-10-21", 1795770000, o).elapses.empty());
}
