// The window gate with an injected "now": job starts, blackouts (absolute and weekly, across midnight and
// DST) and the deadline. Local time is chosen per test with TZ.
#include "pbs_patch/calendar.hpp"
#include "pbs_patch/window.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>

using namespace pbs_patch;

namespace {

class TzGuard {
public:
    explicit TzGuard(const char* tz) {
        if (const char* old = std::getenv("TZ")) old_ = old;
        ::setenv("TZ", tz, 1);
        ::tzset();
    }
    ~TzGuard() {
        if (old_) ::setenv("TZ", old_->c_str(), 1);
        else ::unsetenv("TZ");
        ::tzset();
    }
    TzGuard(const TzGuard&) = delete;
    TzGuard& operator=(const TzGuard&) = delete;

private:
    std::optional<std::string> old_;
};

const std::int64_t kFri0900 = 1795770000;  // Fri 2026-11-27 09:00:00 UTC

JobStart job_at(const char* id, std::optional<std::int64_t> at) {
    return JobStart{ScheduledJob{"sync", id, "daily", "test", "store1 <- r:s", std::nullopt}, at, ""};
}

WindowRequest request(std::int64_t now, int minutes) {
    WindowRequest r;
    r.now = now;
    r.window_s = minutes * 60;
    return r;
}

}  // namespace

TEST_CASE("parse_iso8601: offsets, Z, local time, seconds optional") {
    TzGuard tz("Europe/Berlin");
    CHECK(parse_iso8601("2026-11-27T09:00:00Z") == kFri0900);
    CHECK(parse_iso8601("2026-11-27T09:00Z") == kFri0900);
    CHECK(parse_iso8601("2026-11-27T10:00:00+01:00") == kFri0900);
    CHECK(parse_iso8601("2026-11-27T04:00-0500") == kFri0900);
    CHECK(parse_iso8601("2026-11-27 10:00") == kFri0900);  // local (CET)
    CHECK(parse_iso8601("2026-11-27") == kFri0900 - 10 * 3600);
    CHECK_THROWS_AS(parse_iso8601("tomorrow"), WindowError);
    CHECK_THROWS_AS(parse_iso8601("2026-11-27T25:00"), WindowError);
    CHECK_THROWS_AS(parse_iso8601("2026-11-27T10:00+1"), WindowError);
    CHECK_THROWS_AS(parse_iso8601("2026-11-27X10:00"), WindowError);
}

TEST_CASE("format_utc / format_local") {
    TzGuard tz("Europe/Berlin");
    CHECK(format_utc(kFri0900) == "2026-11-27T09:00:00Z");
    CHECK(format_local(kFri0900) == "2026-11-27 10:00:00 CET");
}

TEST_CASE("a job due inside the window refuses, naming it and when it starts") {
    TzGuard tz("UTC");
    const auto c = find_conflicts(request(kFri0900, 60), {job_at("inside", kFri0900 + 30 * 60)}, {});
    REQUIRE(c.size() == 1);
    CHECK(c[0].kind == "job");
    CHECK(c[0].name == "sync:inside");
    CHECK(c[0].message.find("sync job 'inside'") != std::string::npos);
    CHECK(c[0].message.find("2026-11-27T09:30:00Z") != std::string::npos);
    CHECK(c[0].message.find("2026-11-27 09:30:00 UTC") != std::string::npos);
    CHECK(c[0].message.find("in 30 min") != std::string::npos);
    CHECK(c[0].message.find("60-minute maintenance window") != std::string::npos);
}

TEST_CASE("window edges: due at the end refuses, one second after proceeds; never-again jobs never refuse") {
    CHECK(find_conflicts(request(kFri0900, 60), {job_at("edge", kFri0900 + 3600)}, {}).size() == 1);
    CHECK(find_conflicts(request(kFri0900, 60), {job_at("after", kFri0900 + 3601)}, {}).empty());
    CHECK(find_conflicts(request(kFri0900, 60), {job_at("never", std::nullopt)}, {}).empty());
}

TEST_CASE("a start in the last minute may not have begun (PBS checks once a minute): it refuses") {
    const auto c = find_conflicts(request(kFri0900, 60), {job_at("just", kFri0900 - 30)}, {});
    REQUIRE(c.size() == 1);
    CHECK(c[0].message.find("1 min ago") != std::string::npos);
    CHECK(find_conflicts(request(kFri0900, 60), {job_at("long-ago", kFri0900 - 120)}, {}).empty());
}

TEST_CASE("deadline: the window must end by it") {
    auto r = request(kFri0900, 90);
    r.deadline = kFri0900 + 60 * 60;
    r.deadline_text = "2026-11-27T10:00:00Z";
    auto c = find_conflicts(r, {}, {});
    REQUIRE(c.size() == 1);
    CHECK(c[0].kind == "deadline");
    CHECK(c[0].message.find("after the deadline") != std::string::npos);
    r.deadline = kFri0900 + 90 * 60;
    CHECK(find_conflicts(r, {}, {}).empty());
    r.deadline = kFri0900 - 1;
    c = find_conflicts(r, {}, {});
    REQUIRE(c.size() == 1);
    CHECK(c[0].message.find("has passed") != std::string::npos);
}

TEST_CASE("blackouts: absolute ranges") {
    TzGuard tz("UTC");
    const auto b = parse_blackout("2026-12-24T00:00/2026-12-26T23:59");
    CHECK_FALSE(b.weekly);
    CHECK(find_conflicts(request(parse_iso8601("2026-12-23T23:30Z"), 60), {}, {b}).size() == 1);
    CHECK(find_conflicts(request(parse_iso8601("2026-12-23T22:00Z"), 60), {}, {b}).empty());
    CHECK(find_conflicts(request(parse_iso8601("2026-12-26T23:59Z"), 60), {}, {b}).empty());
    CHECK(find_conflicts(request(parse_iso8601("2026-12-25T12:00Z"), 60), {}, {b}).size() == 1);
    const auto with_offset = parse_blackout("2026-12-24T00:00+01:00/2026-12-24T06:00+01:00");
    CHECK(with_offset.start == parse_iso8601("2026-12-23T23:00Z"));
}

TEST_CASE("blackouts: weekly, in local time, across midnight") {
    TzGuard tz("Europe/Berlin");
    const auto sat = parse_blackout("Sat 01:00-03:00");
    CHECK(sat.weekly);
    CHECK(sat.days == 0x20U);
    // Fri 2026-11-27 is a Friday; Sat 01:00 CET = Sat 00:00 UTC.
    const auto sat_start = parse_iso8601("2026-11-28T01:00");
    auto c = find_conflicts(request(sat_start - 30 * 60, 60), {}, {sat});
    REQUIRE(c.size() == 1);
    CHECK(c[0].kind == "blackout");
    CHECK(c[0].at == sat_start);
    CHECK(c[0].message.find("2026-11-28 01:00:00 CET to 2026-11-28 03:00:00 CET") != std::string::npos);
    CHECK(find_conflicts(request(sat_start - 61 * 60, 60), {}, {sat}).empty());
    CHECK(find_conflicts(request(sat_start + 2 * 3600, 60), {}, {sat}).empty());
    // Starting inside the blackout refuses too.
    CHECK(find_conflicts(request(sat_start + 3600, 10), {}, {sat}).size() == 1);

    const auto nights = parse_blackout("mon..fri 22:00-06:00");
    CHECK(nights.days == 0x1FU);
    // Friday 22:00 runs to Saturday 06:00.
    CHECK(find_conflicts(request(parse_iso8601("2026-11-28T05:00"), 30), {}, {nights}).size() == 1);
    // Saturday 22:00 is not in the list.
    CHECK(find_conflicts(request(parse_iso8601("2026-11-28T21:00"), 120), {}, {nights}).empty());
    CHECK(find_conflicts(request(parse_iso8601("2026-11-27T21:00"), 120), {}, {nights}).size() == 1);

    const auto daily = parse_blackout("12:00 - 13:00");
    CHECK(daily.days == 0x7FU);
    CHECK(find_conflicts(request(parse_iso8601("2026-11-29T11:30"), 45), {}, {daily}).size() == 1);
    const auto weekend = parse_blackout("sat,sun 00:00-24:00");
    CHECK(find_conflicts(request(parse_iso8601("2026-11-29T23:00"), 30), {}, {weekend}).size() == 1);
    CHECK(find_conflicts(request(parse_iso8601("2026-11-30T00:00"), 30), {}, {weekend}).empty());
}

TEST_CASE("blackouts: weekly across the autumn DST change keeps local wall-clock times") {
    TzGuard tz("Europe/Berlin");
    const auto sun = parse_blackout("Sun 01:00-04:00");  // 2026-10-25: 03:00 CEST -> 02:00 CET
    const auto start = parse_iso8601("2026-10-25T01:00");
    CHECK(start == parse_iso8601("2026-10-24T23:00Z"));
    const auto hit = sun.first_overlap(start - 600, start + 600);
    REQUIRE(hit);
    CHECK(hit->first == start);
    CHECK(hit->second == parse_iso8601("2026-10-25T03:00Z"));  // 04:00 CET
}

TEST_CASE("blackouts: bad forms are refused with the accepted forms") {
    for (const char* bad : {"", "Sat", "Sat 01:00", "Xyz 01:00-02:00", "25:00-26:00", "01:00-01:00",
                            "2026-12-26T00:00/2026-12-24T00:00", "2026-12-24/tomorrow"}) {
        CAPTURE(bad);
        CHECK_THROWS_WITH_AS(parse_blackout(bad), doctest::Contains("START/END"), WindowError);
    }
}

TEST_CASE("several conflicts come in time order") {
    TzGuard tz("UTC");
    auto r = request(kFri0900, 120);
    r.deadline = kFri0900 + 3600;
    const auto c = find_conflicts(r, {job_at("late", kFri0900 + 100 * 60), job_at("early", kFri0900 + 5 * 60)},
                                  {parse_blackout("fri 09:30-09:40")});
    REQUIRE(c.size() == 4);
    CHECK(c[0].name == "sync:early");
    CHECK(c[1].kind == "blackout");
    CHECK(c[2].kind == "deadline");
    CHECK(c[3].name == "sync:late");
}
