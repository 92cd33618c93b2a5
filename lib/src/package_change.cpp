// Package changes as reported to Ansible.
#include "pbs_patch/package_change.hpp"

#include "pbs_patch/debian_version.hpp"

namespace pbs_patch {

using nlohmann::json;

std::string PackageChange::action() const {
    if (!from) return "install";
    if (!to) return "remove";
    return compare_debian_versions(*from, *to) > 0 ? "downgrade" : "upgrade";
}

json PackageChange::to_json() const {
    return json{{"name", name},
                {"from", from ? json(*from) : json(nullptr)},
                {"to", to ? json(*to) : json(nullptr)},
                {"action", action()}};
}

json to_json(const std::vector<PackageChange>& changes) {
    json list = json::array();
    for (const auto& c : changes) list.push_back(c.to_json());
    return list;
}

json package_diff(const std::vector<PackageChange>& changes) {
    std::string before;
    std::string after;
    for (const auto& c : changes) {
        if (c.from) before += c.name + " " + *c.from + "\n";
        if (c.to) after += c.name + " " + *c.to + "\n";
    }
    return json{{"before", before}, {"after", after}, {"before_header", "installed packages"},
                {"after_header", "packages after dist-upgrade"}};
}

}  // namespace pbs_patch
