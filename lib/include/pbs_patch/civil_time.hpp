// A calendar date and wall-clock time, and its conversion to Unix time as UTC or as the host's local
// time (the zone's own rules decide DST), shared by the calendar and window parsers.
#pragma once

#include <cstdint>

namespace pbs_patch {

struct CivilTime {
    int year = 1970;
    int month = 1;   // 1..12
    int day = 1;     // 1..31
    int hour = 0;
    int minute = 0;
    int second = 0;  // 0..60 (a leap second is accepted and normalised)

    bool in_range() const {
        return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour >= 0 && hour <= 23 && minute >= 0 &&
               minute <= 59 && second >= 0 && second <= 60;
    }
};

std::int64_t utc_to_epoch(const CivilTime& t);
std::int64_t local_to_epoch(const CivilTime& t);

}  // namespace pbs_patch
