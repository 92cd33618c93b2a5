// Time-zone name validation against the host's zoneinfo database.
#include "pbs_patch/time_zone.hpp"

#include <fmt/format.h>

#include <cctype>
#include <fstream>

namespace pbs_patch {

std::string time_zone_name_problem(std::string_view name) {
    if (name.empty()) return "is empty";
    if (name.size() > 255) return "is too long";
    if (name.front() == '/') return "is an absolute path";
    for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (c == ',') return "is a POSIX TZ rule, not a zone name";
        if (!std::isalnum(u) && c != '/' && c != '_' && c != '-' && c != '+') {
            return fmt::format("holds '{}', which no zone name holds", c);
        }
    }
    std::size_t start = 0;
    while (start <= name.size()) {
        auto end = name.find('/', start);
        if (end == std::string_view::npos) end = name.size();
        const auto part = name.substr(start, end - start);
        if (part.empty()) return "has an empty path component";
        start = end + 1;
    }
    if (name.find("..") != std::string_view::npos) return "holds '..'";
    return {};
}

bool is_tzif(std::string_view bytes) { return bytes.substr(0, 4) == "TZif"; }

void check_time_zone(const std::string& name, const std::string& what, const std::string& zoneinfo_dir) {
    const auto accepted = fmt::format(
        "use an IANA zone name such as Europe/Berlin, America/New_York or UTC (timedatectl list-timezones); an "
        "unknown zone is never taken as UTC");
    if (const auto problem = time_zone_name_problem(name); !problem.empty()) {
        throw TimeZoneError(fmt::format("unknown time zone '{}' ({}): it {}; {}", name, what, problem, accepted));
    }
    const std::string path = zoneinfo_dir + "/" + name;
    std::ifstream in(path, std::ios::binary);
    char head[4] = {};
    if (!in || !in.read(head, sizeof head) || !is_tzif(std::string_view(head, sizeof head))) {
        throw TimeZoneError(fmt::format("unknown time zone '{}' ({}): {} is not a zone file on this host; {}", name,
                                        what, path, accepted));
    }
}

}  // namespace pbs_patch
