// PBS datastores from `proxmox-backup-manager datastore list --output-format json` and whether each one's
// backing path is really there: an unmounted disk leaves an empty mount point behind, so the chunk store
// (`<path>/.chunks`) is what proves it.
#pragma once

#include "pbs_patch/maintenance_mode.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

struct Datastore {
    std::string name;
    std::string path;
    std::optional<std::string> comment;
    std::optional<std::string> maintenance_mode;  // raw property string
    std::optional<std::string> backing_device;    // removable datastores (PBS 3.3+)
};

struct DatastoreListError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Throws DatastoreListError unless the text is a JSON array of objects with name and path.
std::vector<Datastore> parse_datastore_list(std::string_view text);

struct DatastoreStatus {
    Datastore store;
    bool path_exists = false;
    bool readable = false;
    bool chunk_store = false;  // <path>/.chunks is a directory
    std::optional<MaintenanceMode> maintenance;
    // Removable datastores are allowed to be absent; everything else must be there.
    bool available() const { return path_exists && readable && chunk_store; }
    bool ok() const { return available() || store.backing_device.has_value(); }
    std::string problem() const;  // empty when available
    nlohmann::json to_json() const;
};

// Looks at the datastore's path on this host.
DatastoreStatus probe_datastore(const Datastore& store);

}  // namespace pbs_patch
