// `proxmox-backup-manager versions --output-format json`: PascalCase keys (pbs-api-types APTUpdateInfo).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

struct PbsPackageVersion {
    std::string package;
    std::string version;  // may be the APT candidate, not what is installed: ask dpkg for that
    std::optional<std::string> old_version;
    std::optional<std::string> extra_info;  // "running version: 3.2.4", "running kernel: ..."
    nlohmann::json to_json() const;
};

struct PbsVersionsError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Throws PbsVersionsError unless the text is a JSON array of objects with Package and Version.
std::vector<PbsPackageVersion> parse_pbs_versions(std::string_view text);

// The running daemon version from the proxmox-backup-server row ("running version: X.Y.Z").
std::optional<std::string> running_pbs_version(const std::vector<PbsPackageVersion>& versions);

}  // namespace pbs_patch
