// Unit health from `systemctl show -p Id,LoadState,ActiveState,SubState,UnitFileState <units>`: a unit is
// healthy when it is loaded, active and enabled.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

// The properties pbs_health asks for, in the -p form.
inline constexpr const char* kUnitProperties = "Id,LoadState,ActiveState,SubState,UnitFileState";

using UnitProperties = std::map<std::string, std::string>;

// `Key=Value` lines; one block per unit, blocks separated by a blank line, in the order the units were named.
std::vector<UnitProperties> parse_systemctl_show(std::string_view text);

struct UnitState {
    std::string requested;  // the name as configured
    std::string id;         // systemd's primary name (proxmox-backup -> proxmox-backup.service)
    std::string load_state;
    std::string active_state;
    std::string sub_state;
    std::string unit_file_state;

    bool loaded() const { return load_state == "loaded"; }
    bool active() const { return active_state == "active"; }
    // `enabled-runtime` (enabled under /run) counts: it starts at boot as long as /run lasts, i.e. this boot.
    bool enabled() const { return unit_file_state == "enabled" || unit_file_state == "enabled-runtime"; }
    bool healthy() const { return loaded() && active() && enabled(); }
    // On its way somewhere (activating, deactivating, reloading, refreshing, or waiting to be restarted): a
    // verdict on it now would be premature, so the caller waits (bounded) for it to settle.
    bool settling() const {
        return active_state == "activating" || active_state == "deactivating" || active_state == "reloading" ||
               active_state == "refreshing" || sub_state == "auto-restart";
    }
    // Why the unit is not healthy ("not found", "masked", "not active (failed/failed)", "not enabled
    // (disabled)"), empty when healthy.
    std::string problem() const;
    nlohmann::json to_json() const;
};

struct UnitStateError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Pairs the blocks with the requested units (systemctl prints one block per argument, in order). Throws
// UnitStateError when the block count does not match or a block lacks a property.
std::vector<UnitState> parse_unit_states(const std::vector<std::string>& requested, std::string_view show_output);

}  // namespace pbs_patch
