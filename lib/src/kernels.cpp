// Installed kernels from /boot and the pending-kernel verdict.
#include "pbs_patch/kernels.hpp"

#include "pbs_patch/debian_version.hpp"
#include "pbs_patch/text.hpp"

#include <algorithm>
#include <dirent.h>
#include <memory>

namespace pbs_patch {

using nlohmann::json;

std::vector<std::string> kernel_releases_from_names(const std::vector<std::string>& file_names) {
    std::vector<std::string> releases;
    for (const auto& name : file_names) {
        if (!starts_with(name, "vmlinuz-") || name.size() == 8) continue;
        const std::string release = name.substr(8);
        // dpkg leaves these behind while it replaces a file; they are not kernels.
        if (release.ends_with(".dpkg-tmp") || release.ends_with(".dpkg-new") || release.ends_with(".dpkg-bak")) continue;
        releases.push_back(release);
    }
    std::sort(releases.begin(), releases.end(),
              [](const auto& a, const auto& b) { return compare_debian_versions(a, b) > 0; });
    releases.erase(std::unique(releases.begin(), releases.end()), releases.end());
    return releases;
}

std::vector<std::string> list_directory(const std::string& dir) {
    std::vector<std::string> names;
    std::unique_ptr<DIR, int (*)(DIR*)> handle(::opendir(dir.c_str()), ::closedir);
    if (!handle) return names;
    while (const dirent* entry = ::readdir(handle.get())) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::optional<bool> KernelStatus::pending() const {
    if (!newest) return std::nullopt;
    return *newest != running;
}

json KernelStatus::to_json() const {
    const auto p = pending();
    return json{{"running", running},
                {"newest_installed", newest ? json(*newest) : json(nullptr)},
                {"installed", installed},
                {"pending", p ? json(*p) : json(nullptr)}};
}

KernelStatus kernel_status(const std::string& running_release, const std::vector<std::string>& boot_file_names) {
    KernelStatus s;
    s.running = running_release;
    s.installed = kernel_releases_from_names(boot_file_names);
    if (!s.installed.empty()) s.newest = s.installed.front();
    return s;
}

}  // namespace pbs_patch
