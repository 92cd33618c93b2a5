// The decisions of pbs_quiesce, as pure functions: which datastores get our maintenance mode (only those
// without any: an admin's mode is left exactly as it was), what to do with each at restore time (clear only
// what we set and still find as we set it), and the words for what is still busy.
#pragma once

#include "pbs_patch/active_operations.hpp"
#include "pbs_patch/datastores.hpp"
#include "pbs_patch/task_list.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pbs_patch {

// One datastore in the `quiesce` report: {name, before, set, restored, left_alone, error}.
struct QuiesceEntry {
    std::string name;
    std::optional<std::string> before;  // the maintenance-mode property before us (raw), none = not in maintenance
    std::optional<std::string> set;     // what we set, as PBS stored it (raw); none = we set nothing
    bool restored = false;              // we took our mode away again (the datastore is as before)
    bool left_alone = false;            // it was already in maintenance: never touched
    std::optional<std::string> error;

    nlohmann::json to_json() const;
    // From a previous pbs_quiesce result; throws std::invalid_argument on a malformed entry.
    static QuiesceEntry from_json(const nlohmann::json& j);
};

std::vector<QuiesceEntry> plan_quiesce(const std::vector<Datastore>& stores);

enum class RestoreAction {
    Nothing,      // we set nothing there (left alone, mode none) or it is restored already
    Clear,        // our mode is still there: --delete maintenance-mode
    AlreadyClear, // someone cleared it meanwhile: it is as before
    Changed,      // someone changed it meanwhile: leave theirs
    Gone,         // the datastore no longer exists
};

RestoreAction restore_action(const QuiesceEntry& entry, const std::vector<Datastore>& now);

// "backup store1:vm/100 by root@pam since ... (UPID...)" per task and "store1: 0 read, 1 write operation(s)" per
// busy datastore.
std::vector<std::string> describe_busy(const std::vector<TaskItem>& running,
                                       const std::map<std::string, ActiveOperations>& operations);

}  // namespace pbs_patch
