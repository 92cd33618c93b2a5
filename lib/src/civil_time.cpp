// Civil time to Unix time: timegm for UTC, mktime (DST left to the zone) for local time.
#include "pbs_patch/civil_time.hpp"

#include <ctime>

namespace pbs_patch {
namespace {

std::tm to_tm(const CivilTime& t) {
    std::tm tm{};
    tm.tm_year = t.year - 1900;
    tm.tm_mon = t.month - 1;
    tm.tm_mday = t.day;
    tm.tm_hour = t.hour;
    tm.tm_min = t.minute;
    tm.tm_sec = t.second;
    tm.tm_isdst = -1;
    return tm;
}

}  // namespace

std::int64_t utc_to_epoch(const CivilTime& t) {
    std::tm tm = to_tm(t);
    return static_cast<std::int64_t>(::timegm(&tm));
}

std::int64_t local_to_epoch(const CivilTime& t) {
    std::tm tm = to_tm(t);
    return static_cast<std::int64_t>(std::mktime(&tm));
}

}  // namespace pbs_patch
