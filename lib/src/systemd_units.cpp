// systemctl show parsing and the active+enabled verdict.
#include "pbs_patch/systemd_units.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

namespace pbs_patch {

using nlohmann::json;

std::vector<UnitProperties> parse_systemctl_show(std::string_view text) {
    std::vector<UnitProperties> blocks;
    UnitProperties current;
    for (const auto& line : split_lines(text)) {
        if (line.empty()) {
            if (!current.empty()) blocks.push_back(std::move(current));
            current.clear();
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string::npos || eq == 0) continue;  // not a property line
        current[line.substr(0, eq)] = line.substr(eq + 1);
    }
    if (!current.empty()) blocks.push_back(std::move(current));
    return blocks;
}

std::string UnitState::problem() const {
    if (load_state == "not-found") return "not found (no such unit file)";
    if (load_state == "masked") return "masked";
    if (!loaded()) return fmt::format("not loaded (LoadState={})", load_state);
    std::vector<std::string> parts;
    if (!active()) parts.push_back(fmt::format("not active ({}/{})", active_state, sub_state));
    if (!enabled()) {
        parts.push_back(fmt::format("not enabled ({})", unit_file_state.empty() ? "no unit file state" : unit_file_state));
    }
    return join(parts, ", ");
}

json UnitState::to_json() const {
    return json{{"name", requested},           {"id", id},
                {"load_state", load_state},    {"active_state", active_state},
                {"sub_state", sub_state},      {"unit_file_state", unit_file_state},
                {"active", active()},          {"enabled", enabled()},
                {"healthy", healthy()},        {"problem", healthy() ? json(nullptr) : json(problem())}};
}

std::vector<UnitState> parse_unit_states(const std::vector<std::string>& requested, std::string_view show_output) {
    const auto blocks = parse_systemctl_show(show_output);
    if (blocks.size() != requested.size()) {
        throw UnitStateError(fmt::format("systemctl show printed {} unit block(s) for {} unit(s)", blocks.size(),
                                         requested.size()));
    }
    std::vector<UnitState> states;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        const auto& b = blocks[i];
        auto get = [&](const char* key) {
            const auto it = b.find(key);
            if (it == b.end()) {
                throw UnitStateError(fmt::format("systemctl show gave no {} for {}", key, requested[i]));
            }
            return it->second;
        };
        UnitState s;
        s.requested = requested[i];
        s.id = get("Id");
        s.load_state = get("LoadState");
        s.active_state = get("ActiveState");
        // Printed even when empty because they are asked for with -p (systemctl sets SHOW_EMPTY); tolerate
        // their absence anyway, an empty state is never healthy.
        s.sub_state = b.contains("SubState") ? b.at("SubState") : "";
        s.unit_file_state = b.contains("UnitFileState") ? b.at("UnitFileState") : "";
        states.push_back(std::move(s));
    }
    return states;
}

}  // namespace pbs_patch
