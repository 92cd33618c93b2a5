// A snapshot of installed packages from dpkg-query and the difference between two snapshots: the truth
// about what an upgrade changed, whatever apt printed on the way.
#pragma once

#include "pbs_patch/package_change.hpp"

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

// The dpkg-query format the snapshot parser reads (one package per line, tab-separated).
inline constexpr const char* kDpkgQueryFormat = "${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Abbrev}\\n";

struct InstalledPackage {
    std::string name;
    std::string arch;
    std::string version;
    std::string status;  // db:Status-Abbrev, e.g. "ii ", "iF ", "rc "

    // Unpacked or further (the second letter is not n = not-installed or c = config-files only).
    bool present() const;
};

// Key: the package name, or name:arch when the same name is present for several architectures.
using DpkgState = std::map<std::string, InstalledPackage>;

struct DpkgStateError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Parses dpkg-query output in kDpkgQueryFormat; only present packages are kept. Throws DpkgStateError on a
// line that does not have the four fields.
DpkgState parse_dpkg_state(std::string_view text);

// Upgrades/downgrades, installs (from null) and removals (to null), sorted by name.
std::vector<PackageChange> diff_dpkg_states(const DpkgState& before, const DpkgState& after);

}  // namespace pbs_patch
