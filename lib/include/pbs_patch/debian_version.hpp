// Debian package version ordering ([epoch:]upstream[-revision]), as `dpkg --compare-versions` orders them.
#pragma once

#include <string>
#include <string_view>

namespace pbs_patch {

struct DebianVersion {
    unsigned long epoch = 0;
    std::string upstream;
    std::string revision;  // empty when the version has no '-'
};

// Splits at the first ':' (epoch) and the last '-' (revision). A non-numeric epoch counts as 0.
DebianVersion parse_debian_version(std::string_view text);

// <0, 0, >0 like strcmp; `~` sorts before everything, even the end of the string.
int compare_debian_versions(std::string_view a, std::string_view b);

}  // namespace pbs_patch
