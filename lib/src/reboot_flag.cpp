// The reboot-required flag files.
#include "pbs_patch/reboot_flag.hpp"

#include "pbs_patch/system_info.hpp"
#include "pbs_patch/text.hpp"

#include <set>

namespace pbs_patch {

std::vector<std::string> parse_reboot_required_pkgs(std::string_view text) {
    std::vector<std::string> pkgs;
    std::set<std::string> seen;
    for (const auto& line : split_lines(text)) {
        auto name = trim(line);
        if (!name.empty() && seen.insert(name).second) pkgs.push_back(std::move(name));
    }
    return pkgs;
}

RebootFlag read_reboot_flag(const std::string& flag_file) {
    RebootFlag flag;
    flag.required = file_exists(flag_file);
    try {
        flag.pkgs = parse_reboot_required_pkgs(read_file(flag_file + ".pkgs"));
    } catch (const std::exception&) {
        // absent: nothing named a package
    }
    return flag;
}

}  // namespace pbs_patch
