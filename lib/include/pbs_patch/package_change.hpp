// One package whose installed version changes: upgraded, downgraded, installed (from null) or removed (to null).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace pbs_patch {

struct PackageChange {
    std::string name;
    std::optional<std::string> from;  // nullopt: newly installed
    std::optional<std::string> to;    // nullopt: removed

    // "upgrade", "downgrade", "install" or "remove".
    std::string action() const;
    nlohmann::json to_json() const;  // {name, from, to, action}
    bool operator==(const PackageChange&) const = default;
};

nlohmann::json to_json(const std::vector<PackageChange>& changes);

// Ansible's diff for package changes: one "name version" line per package, before and after.
nlohmann::json package_diff(const std::vector<PackageChange>& changes);

}  // namespace pbs_patch
