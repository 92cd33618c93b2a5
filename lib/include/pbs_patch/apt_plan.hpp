// What apt-get says it will do: the `Inst`/`Remv`/`Purg` lines of a simulation (`apt-get -s`) and the
// held-back list that both simulated and real runs print.
#pragma once

#include "pbs_patch/package_change.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

struct AptPlan {
    std::vector<PackageChange> changes;   // in apt's order; Conf lines add nothing
    std::vector<std::string> held_back;   // "kept back" by apt (holds, phased updates, unresolved deps)
    bool empty() const { return changes.empty(); }
};

// One simulation line: `Inst name [old] (new Origin:Release [arch]) [broken-deps]`, `Inst name (new ...)`,
// `Remv name [old]`, `Purg name [old]`. nullopt for anything else (Conf, headers, prose).
std::optional<PackageChange> parse_apt_action_line(std::string_view line);

// The packages listed under "The following packages have been kept back:" (apt <= 2.8) or
// "Not upgrading:" (apt >= 2.9, Debian 13).
std::vector<std::string> parse_held_back(std::string_view apt_output);

// A whole `apt-get -s dist-upgrade` stdout. Reinstalls (same version) are not changes.
AptPlan parse_apt_simulation(std::string_view apt_output);

}  // namespace pbs_patch
