// Debian's reboot-required flag (/var/run/reboot-required) and the packages that asked for it (.pkgs).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

// One package per line; blank lines and duplicates dropped, first-seen order kept.
std::vector<std::string> parse_reboot_required_pkgs(std::string_view text);

struct RebootFlag {
    bool required = false;
    std::vector<std::string> pkgs;
};

// Reads `<flag_file>` and `<flag_file>.pkgs`; a missing .pkgs file is an empty list.
RebootFlag read_reboot_flag(const std::string& flag_file);

}  // namespace pbs_patch
