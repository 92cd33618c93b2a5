// Pending-kernel detection from /boot file names, and the reboot-required flag files.
#include "pbs_patch/kernels.hpp"
#include "pbs_patch/reboot_flag.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace pbs_patch;
namespace fs = std::filesystem;

TEST_CASE("kernels: releases from /boot names, newest first") {
    // /boot of a PBS host after an upgrade that brought a new Proxmox kernel (names as the packages ship them).
    const std::vector<std::string> boot{"System.map-6.8.12-4-pve", "config-6.8.12-4-pve",   "initrd.img-6.8.12-10-pve",
                                        "initrd.img-6.8.12-4-pve", "vmlinuz-6.8.12-10-pve", "vmlinuz-6.8.12-4-pve",
                                        "vmlinuz-6.5.13-6-pve",    "efi",                   "grub",
                                        "vmlinuz",                 "vmlinuz-6.8.12-9-pve.dpkg-tmp"};
    CHECK(kernel_releases_from_names(boot) == std::vector<std::string>{"6.8.12-10-pve", "6.8.12-4-pve", "6.5.13-6-pve"});
    const auto status = kernel_status("6.8.12-4-pve", boot);
    CHECK(status.newest == "6.8.12-10-pve");
    CHECK(status.pending() == true);
    const auto j = status.to_json();
    CHECK(j["pending"] == true);
    CHECK(j["running"] == "6.8.12-4-pve");
}

TEST_CASE("kernels: running the newest, Debian cloud kernel (the lab guest's /boot)") {
    const std::vector<std::string> boot{"System.map-6.1.0-50-cloud-amd64", "config-6.1.0-50-cloud-amd64",
                                        "initrd.img-6.1.0-50-cloud-amd64", "vmlinuz-6.1.0-50-cloud-amd64"};
    const auto status = kernel_status("6.1.0-50-cloud-amd64", boot);
    CHECK(status.pending() == false);
    CHECK(kernel_status("6.1.0-28-amd64", {"vmlinuz-6.1.0-28-amd64", "vmlinuz-6.1.0-30-amd64"}).pending() == true);
}

TEST_CASE("kernels: nothing in /boot is unknown, not 'no pending kernel'") {
    const auto status = kernel_status("6.1.0-28-amd64", {});
    CHECK_FALSE(status.pending().has_value());
    CHECK(status.to_json()["pending"].is_null());
    CHECK(list_directory("/nonexistent/boot").empty());
}

TEST_CASE("reboot-required flag and .pkgs") {
    CHECK(parse_reboot_required_pkgs("linux-image-6.1.0-30-amd64\nlibc6\n\nlibc6\n") ==
          std::vector<std::string>{"linux-image-6.1.0-30-amd64", "libc6"});
    const fs::path dir = fs::temp_directory_path() / "pbs_patch_reboot_flag_test";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string flag = (dir / "reboot-required").string();
    auto f = read_reboot_flag(flag);
    CHECK_FALSE(f.required);
    CHECK(f.pkgs.empty());
    std::ofstream(flag) << "*** System restart required ***\n";
    std::ofstream(flag + ".pkgs") << "pbs-lab-kernel\n";
    f = read_reboot_flag(flag);
    CHECK(f.required);
    CHECK(f.pkgs == std::vector<std::string>{"pbs-lab-kernel"});
    fs::remove_all(dir);
}
