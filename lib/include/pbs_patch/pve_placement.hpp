// Decisions on the Proxmox VE side, pure functions over what pve_cluster/pve_tasks parsed:
//  - where the PBS VM is now and whether it may be touched (quorum, the inventory's node mapping, VMID and
//    name, lock, HA state), and which inventory host runs its qm commands;
//  - whether a running vzdump task writes to this PBS (the reboot would break it);
//  - which storage a vzdump job without `storage` uses (the defaults of the nodes that run it).
#pragma once

#include "pbs_patch/pve_cluster.hpp"
#include "pbs_patch/pve_tasks.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pbs_patch {

// One inventory host and the PVE node name it is (the inventory's explicit mapping).
struct NodeMapping {
    std::string host;
    std::string node;
};

enum class PvePhase { Preflight, Reboot, Verify };
PvePhase parse_pve_phase(const std::string& text);  // preflight | reboot | verify

struct PlacementRequest {
    std::int64_t vmid = 0;
    std::string name;                  // expected VM name
    std::vector<NodeMapping> mapping;  // empty: a single node, the asked host
    std::string group;                 // inventory group of the nodes (for messages)
    std::string asked_host;            // the inventory host that answered
    std::string expect_node;           // the asked host must be this node ("" = not checked)
    std::string previous_node;         // where the VM was at the last check ("" = first check)
    PvePhase phase = PvePhase::Preflight;
};

struct Placement {
    bool refused = false;
    std::string reason;   // no_quorum, mapping, not_found, container, wrong_name, unknown_state, template,
                          // locked, not_in_inventory, node_offline, ha_state, not_running ("" when not refused)
    std::string message;
    bool single_node = true;
    std::string local_node;           // the node that answered
    std::optional<PveGuest> vm;
    std::string node;                 // where the VM is
    std::string host;                 // the inventory host of that node
    bool moved = false;
    std::vector<std::string> notes;

    nlohmann::json to_json() const;
};

// In the Verify phase nothing is refused (the VM is only located and its state reported).
Placement place_vm(const PveClusterStatus& status, const PveResources& resources, const PlacementRequest& request);

// The suffix every refusal of a phase carries: what has and has not happened.
std::string phase_consequence(PvePhase phase);

// A running vzdump task and what it writes to.
struct VzdumpFinding {
    PveTask task;
    std::string storage;         // resolved target storage ("" when unknown or a dumpdir)
    std::string storage_source;  // "command line", "vzdump defaults of node X", "unknown"
    bool blocks = false;         // it writes to this PBS, or we cannot tell (fail closed)
    std::string why;
    nlohmann::json to_json() const;
};

// `targets`: storage id -> "server:datastore" of the storages that are this PBS (pbs_target_storages).
// `log`: the task's job line (nullopt = the log could not be read). `node_defaults`: the task node's vzdump
// defaults (nullopt = not read / unreadable). Unknown storage blocks.
VzdumpFinding judge_vzdump_task(const PveTask& task, const std::optional<VzdumpJobLine>& log,
                                const std::optional<VzdumpDefaults>& node_defaults,
                                const std::map<std::string, std::string>& targets);

// The nodes whose vzdump defaults decide the storage of the jobs in `cluster_backup` that set neither
// `storage` nor `dumpdir`: the job's `node`, or every node in `cluster_nodes`.
std::vector<std::string> nodes_needing_defaults(const nlohmann::json& cluster_backup,
                                                const std::vector<std::string>& cluster_nodes);

// `cluster_backup` with the storage of such jobs filled in from `defaults` (node -> defaults): a storage that
// is this PBS wins over one that is not (the job writes here from that node). Each resolved job gets
// `storage_from` ("vzdump defaults of node X"). Nodes missing from `defaults` are skipped (offline: they run
// nothing). Throws PveJsonError when the list is not an array of objects.
nlohmann::json resolve_job_storage(const nlohmann::json& cluster_backup,
                                   const std::map<std::string, VzdumpDefaults>& defaults,
                                   const std::vector<std::string>& cluster_nodes,
                                   const std::map<std::string, std::string>& targets);

}  // namespace pbs_patch
