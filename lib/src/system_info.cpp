// Thin probes of the running system.
#include "pbs_patch/system_info.hpp"

#include "pbs_patch/text.hpp"

#include <cerrno>
#include <ctime>
#include <cstring>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>

namespace pbs_patch {

long long df_ceil_gib(unsigned long long bytes) {
    return static_cast<long long>((bytes + kGiB - 1) / kGiB);
}

DiskSpace probe_disk_space(const std::string& path) {
    struct statvfs vfs {};
    if (::statvfs(path.c_str(), &vfs) != 0) {
        throw std::runtime_error(path + ": " + std::strerror(errno));
    }
    DiskSpace space;
    space.avail_bytes = static_cast<unsigned long long>(vfs.f_bavail) * vfs.f_frsize;
    space.avail_gib = df_ceil_gib(space.avail_bytes);
    return space;
}

std::optional<double> parse_uptime(std::string_view text) {
    const auto words = split_ws(text);
    if (words.empty()) return std::nullopt;
    try {
        std::size_t used = 0;
        const double value = std::stod(words[0], &used);
        if (used != words[0].size() || value < 0) return std::nullopt;
        return value;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::optional<std::string> parse_boot_id(std::string_view text) {
    std::string id = trim(text);
    if (id.size() != 36) return std::nullopt;
    for (std::size_t i = 0; i < id.size(); ++i) {
        char& c = id[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return std::nullopt;
        } else if (c >= 'A' && c <= 'F') {
            c = static_cast<char>(c - 'A' + 'a');
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return std::nullopt;
        }
    }
    return id;
}

std::string read_boot_id(const std::string& proc_root) {
    const std::string path = proc_root + "/sys/kernel/random/boot_id";
    const std::string text = read_file(path);
    auto id = parse_boot_id(text);
    if (!id) throw std::runtime_error(path + " does not hold a UUID: '" + tail_lines(trim(text), 1).substr(0, 80) + "'");
    return *id;
}

std::optional<double> read_uptime(const std::string& proc_root) {
    try {
        return parse_uptime(read_file(proc_root + "/uptime"));
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string kernel_release() {
    struct utsname u {};
    if (::uname(&u) != 0) return {};
    return u.release;
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

std::string utc_now_iso() { return utc_iso(static_cast<long long>(std::time(nullptr))); }

std::string utc_iso(long long epoch_seconds) {
    const auto when = static_cast<std::time_t>(epoch_seconds);
    std::tm tm{};
    ::gmtime_r(&when, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buffer;
}

}  // namespace pbs_patch
