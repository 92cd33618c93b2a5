// Parser for apt-get's simulation lines (apt-private/private-install.cc, pkgSimulate in apt-pkg/algorithms.cc).
#include "pbs_patch/apt_plan.hpp"

#include "pbs_patch/text.hpp"

#include <set>

namespace pbs_patch {

namespace {

// The text between an opening bracket at `pos` and its closing one.
std::optional<std::string> bracketed(std::string_view text, std::size_t pos, char open, char close) {
    if (pos >= text.size() || text[pos] != open) return std::nullopt;
    const auto end = text.find(close, pos + 1);
    if (end == std::string_view::npos) return std::nullopt;
    return std::string(text.substr(pos + 1, end - pos - 1));
}

}  // namespace

std::optional<PackageChange> parse_apt_action_line(std::string_view line) {
    const bool inst = starts_with(line, "Inst ");
    const bool remove = starts_with(line, "Remv ") || starts_with(line, "Purg ");
    if (!inst && !remove) return std::nullopt;
    std::string_view rest = line.substr(5);
    const auto name_end = rest.find(' ');
    PackageChange change;
    change.name = std::string(rest.substr(0, name_end));
    if (change.name.empty()) return std::nullopt;
    std::size_t pos = name_end == std::string_view::npos ? rest.size() : name_end + 1;
    if (auto current = bracketed(rest, pos, '[', ']')) {
        change.from = trim(*current);
        pos += current->size() + 3;  // "[...] "
    }
    if (inst) {
        const auto candidate = bracketed(rest, std::min(pos, rest.size()), '(', ')');
        if (!candidate) return std::nullopt;
        const auto words = split_ws(*candidate);
        if (words.empty()) return std::nullopt;
        change.to = words[0];
    } else if (!change.from) {
        return std::nullopt;
    }
    return change;
}

std::vector<std::string> parse_held_back(std::string_view apt_output) {
    std::vector<std::string> held;
    bool in_list = false;
    for (const auto& line : split_lines(apt_output)) {
        if (line == "The following packages have been kept back:" || line == "Not upgrading:") {
            in_list = true;
            continue;
        }
        if (in_list) {
            // The list is wrapped and indented by two spaces; the next header is not indented.
            if (!line.empty() && line[0] == ' ') {
                for (auto& name : split_ws(line)) held.push_back(std::move(name));
                continue;
            }
            in_list = false;
        }
    }
    std::set<std::string> seen;
    std::vector<std::string> unique;
    for (auto& name : held) {
        if (seen.insert(name).second) unique.push_back(std::move(name));
    }
    return unique;
}

AptPlan parse_apt_simulation(std::string_view apt_output) {
    AptPlan plan;
    for (const auto& line : split_lines(apt_output)) {
        auto change = parse_apt_action_line(line);
        if (!change || (change->from && change->to && *change->from == *change->to)) continue;
        plan.changes.push_back(std::move(*change));
    }
    plan.held_back = parse_held_back(apt_output);
    return plan;
}

}  // namespace pbs_patch
