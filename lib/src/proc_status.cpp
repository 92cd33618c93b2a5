// /proc/<pid>/status parser (format: fs/proc/array.c, "Key:\tvalue" lines).
#include "pbs_patch/proc_status.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <charconv>
#include <stdexcept>

namespace pbs_patch {

ProcStatus parse_proc_status(std::string_view text) {
    ProcStatus s;
    bool have_name = false, have_state = false, have_ppid = false;
    auto number = [](const std::string& key, const std::string& value) {
        int n = 0;
        const auto* end = value.data() + value.size();
        const auto [ptr, ec] = std::from_chars(value.data(), end, n);
        if (ec != std::errc{} || ptr != end || n < 0) {
            throw std::runtime_error(fmt::format("/proc status: '{}' is not a process id: '{}'", key, value));
        }
        return n;
    };
    for (const auto& line : split_lines(text)) {
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        const std::string key = line.substr(0, colon);
        // The name keeps its spaces (comm may hold them); only the tab after the colon goes.
        std::string value = line.substr(colon + 1);
        if (key == "Name") {
            if (!value.empty() && value.front() == '\t') value.erase(0, 1);
            s.name = value;
            have_name = true;
            continue;
        }
        value = trim(value);
        if (key == "State") {
            if (value.empty()) throw std::runtime_error("/proc status: empty 'State'");
            s.state = value.front();
            s.state_text = value;
            have_state = true;
        } else if (key == "PPid") {
            s.ppid = number(key, value);
            have_ppid = true;
        } else if (key == "Tgid") {
            s.tgid = number(key, value);
        }
    }
    if (!have_name || !have_state || !have_ppid) {
        throw std::runtime_error(fmt::format("/proc status: missing {}", !have_name ? "'Name'" : !have_state ? "'State'" : "'PPid'"));
    }
    return s;
}

std::optional<ProcStatus> read_proc_status(const std::string& proc_root, int pid) {
    try {
        return parse_proc_status(read_file(proc_root + "/" + std::to_string(pid) + "/status"));
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace pbs_patch
