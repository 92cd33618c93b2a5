// Datastore maintenance modes as PBS stores them: a property string (`read-only,message=...`), parsed the way
// proxmox-schema does (pbs-api-types MaintenanceMode, proxmox-schema property_string.rs / ser/mod.rs), and the
// argument pbs_quiesce hands to `proxmox-backup-manager datastore update --maintenance-mode`.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pbs_patch {

struct MaintenanceMode {
    std::string type;  // "read-only", "offline"; PBS 3.2 also "delete", PBS 4 "unmount", "s3-refresh"
    std::optional<std::string> message;
};

// `type=offline,message="..."`, `read-only,message=...` (PBS writes the default key `type` without its name
// and quotes a value only when it holds `"`, `\` or a newline). nullopt when PBS itself could not parse it: no
// type, an unknown key, a key twice (an unquoted message with a comma), an unterminated quote. PBS then does not
// treat the datastore as in maintenance (DataStoreConfig::get_maintenance_mode).
std::optional<MaintenanceMode> parse_maintenance_mode(std::string_view text);

// The maintenance types PBS checks operations against; "read-only" blocks writes, "offline" reads and writes.
bool blocks_writes(const MaintenanceMode& mode);
bool blocks_reads(const MaintenanceMode& mode);

// A message PBS accepts and stores so that it parses back (<= 64 characters, no control characters; no `,`,
// which PBS stores unquoted and then cannot parse; no `"`, `\` or `%`, which PBS escapes or percent-decodes):
// anything else becomes a space, then it is trimmed and cut at 64 characters. `changed` says whether it had to.
std::string sanitize_maintenance_message(std::string_view message, bool* changed = nullptr);

// The `--maintenance-mode` argument: `type=<type>[,message="<message>"]` (the message quoted, as PBS's GUI sends).
std::string maintenance_mode_argument(const std::string& type, const std::string& message);

// How PBS stores a mode (proxmox-schema's property-string serializer): `read-only`, `read-only,message=...`,
// the message quoted (with `\"`, `\\`, `\n`) only when it holds `"`, `\` or a newline.
std::string format_maintenance_mode(const MaintenanceMode& mode);

// Same type and same message (absent and empty are the same: PBS shows neither).
bool same_maintenance(const MaintenanceMode& a, const MaintenanceMode& b);

}  // namespace pbs_patch
