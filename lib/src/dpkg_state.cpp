// dpkg-query snapshots and their difference.
#include "pbs_patch/dpkg_state.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace pbs_patch {

bool InstalledPackage::present() const {
    return status.size() >= 2 && status[1] != 'n' && status[1] != 'c';
}

DpkgState parse_dpkg_state(std::string_view text) {
    std::vector<InstalledPackage> packages;
    std::map<std::string, int> instances;
    std::size_t number = 0;
    for (const auto& line : split_lines(text)) {
        ++number;
        if (trim(line).empty()) continue;
        std::vector<std::string> fields;
        std::size_t start = 0;
        while (true) {
            const auto tab = line.find('\t', start);
            fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        if (fields.size() != 4 || fields[0].empty() || fields[3].size() < 2) {
            throw DpkgStateError(fmt::format("dpkg-query line {} is not 'package<TAB>arch<TAB>version<TAB>status': {}",
                                             number, line));
        }
        InstalledPackage p{fields[0], fields[1], fields[2], fields[3]};
        if (!p.present()) continue;
        ++instances[p.name];
        packages.push_back(std::move(p));
    }
    DpkgState state;
    for (auto& p : packages) {
        const std::string key = instances[p.name] > 1 ? p.name + ":" + p.arch : p.name;
        state[key] = std::move(p);
    }
    return state;
}

std::vector<PackageChange> diff_dpkg_states(const DpkgState& before, const DpkgState& after) {
    std::vector<PackageChange> changes;
    for (const auto& [key, old] : before) {
        const auto it = after.find(key);
        if (it == after.end()) {
            changes.push_back({key, old.version, std::nullopt});
        } else if (it->second.version != old.version) {
            changes.push_back({key, old.version, it->second.version});
        }
    }
    for (const auto& [key, now] : after) {
        if (!before.contains(key)) changes.push_back({key, std::nullopt, now.version});
    }
    std::sort(changes.begin(), changes.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return changes;
}

}  // namespace pbs_patch
