// Parser for the versions JSON.
#include "pbs_patch/pbs_versions.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

namespace pbs_patch {

using nlohmann::json;

namespace {

std::optional<std::string> optional_string(const json& item, const char* key) {
    const auto it = item.find(key);
    if (it == item.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) return std::nullopt;
    return it->get<std::string>();
}

}  // namespace

json PbsPackageVersion::to_json() const {
    return json{{"package", package},
                {"version", version},
                {"old_version", old_version ? json(*old_version) : json(nullptr)},
                {"extra_info", extra_info ? json(*extra_info) : json(nullptr)}};
}

std::vector<PbsPackageVersion> parse_pbs_versions(std::string_view text) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::exception&) {
        throw PbsVersionsError(fmt::format("versions output is not JSON: {}", tail_lines(trim(text), 2)));
    }
    if (!doc.is_array()) throw PbsVersionsError("versions output is not a JSON array");
    std::vector<PbsPackageVersion> versions;
    for (std::size_t i = 0; i < doc.size(); ++i) {
        const auto& item = doc[i];
        const auto package = item.is_object() ? optional_string(item, "Package") : std::nullopt;
        const auto version = item.is_object() ? optional_string(item, "Version") : std::nullopt;
        if (!package || !version) throw PbsVersionsError(fmt::format("versions entry {} has no Package/Version", i));
        versions.push_back({*package, *version, optional_string(item, "OldVersion"), optional_string(item, "ExtraInfo")});
    }
    return versions;
}

std::optional<std::string> running_pbs_version(const std::vector<PbsPackageVersion>& versions) {
    constexpr std::string_view prefix = "running version: ";
    for (const auto& v : versions) {
        if (v.package != "proxmox-backup-server" || !v.extra_info) continue;
        const auto pos = v.extra_info->find(prefix);
        if (pos == std::string::npos) continue;
        return trim(std::string_view(*v.extra_info).substr(pos + prefix.size()));
    }
    return std::nullopt;
}

}  // namespace pbs_patch
