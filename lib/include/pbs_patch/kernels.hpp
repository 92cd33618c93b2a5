// Pending-kernel detection: the running kernel against the newest one installed in /boot. Proxmox kernel
// packages are reported not to write /var/run/reboot-required, so the flag file alone is not enough.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace pbs_patch {

// Kernel releases from `vmlinuz-<release>` names (other names are ignored), newest first
// (Debian version order, as update-grub sorts them).
std::vector<std::string> kernel_releases_from_names(const std::vector<std::string>& file_names);

// The file names in boot_dir (e.g. /boot); empty when it cannot be read.
std::vector<std::string> list_directory(const std::string& dir);

struct KernelStatus {
    std::string running;
    std::vector<std::string> installed;  // newest first
    std::optional<std::string> newest;
    // nullopt when nothing is installed in /boot (unknown, never guessed as false).
    std::optional<bool> pending() const;
    nlohmann::json to_json() const;
};

KernelStatus kernel_status(const std::string& running_release, const std::vector<std::string>& boot_file_names);

}  // namespace pbs_patch
