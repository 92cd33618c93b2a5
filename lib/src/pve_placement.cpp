// PVE-side decisions (see pve_placement.hpp). Every refusal says what is wrong, what to do, and what has
// (not) happened in this phase of the run.
#include "pbs_patch/pve_placement.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace pbs_patch {

using nlohmann::json;

PvePhase parse_pve_phase(const std::string& text) {
    if (text == "preflight") return PvePhase::Preflight;
    if (text == "reboot") return PvePhase::Reboot;
    if (text == "verify") return PvePhase::Verify;
    throw std::invalid_argument(fmt::format("unknown phase '{}' (preflight, reboot, verify)", text));
}

std::string phase_consequence(PvePhase phase) {
    switch (phase) {
        case PvePhase::Preflight: return "Nothing was changed.";
        case PvePhase::Reboot:
            return "The packages are upgraded, but PBS was NOT rebooted: once this is resolved, reboot it from the "
                   "node that hosts it (qm reboot) or rerun the play.";
        case PvePhase::Verify: return "PBS was rebooted.";
    }
    return {};
}

json Placement::to_json() const {
    return {{"refused", refused},
            {"reason", reason.empty() ? json(nullptr) : json(reason)},
            {"single_node", single_node},
            {"local_node", local_node},
            {"vm", vm ? vm->to_json() : json(nullptr)},
            {"node", node.empty() ? json(nullptr) : json(node)},
            {"host", host.empty() ? json(nullptr) : json(host)},
            {"moved", moved},
            {"notes", notes}};
}

namespace {

std::string lock_hint(const std::string& lock) {
    if (lock == "migrate") return "a migration is in progress (qm migrate, HA or pvenode migrateall): wait until it has finished";
    if (lock == "backup") return "a vzdump backup of this VM is running: wait until it has finished";
    if (lock == "snapshot" || lock == "snapshot-delete" || lock == "rollback") {
        return "a snapshot operation is running: wait until it has finished";
    }
    if (lock == "clone" || lock == "create" || lock == "disk") return "a clone or disk operation is running: wait until it has finished";
    if (lock == "suspending" || lock == "suspended") return "the VM is (being) hibernated: resume it first";
    return "an operation holds the VM's configuration lock: find out which (task list) and wait for it";
}

std::string known_nodes(const std::vector<NodeMapping>& mapping) {
    std::vector<std::string> parts;
    for (const auto& m : mapping) parts.push_back(m.node.empty() ? m.host : fmt::format("{} ({})", m.host, m.node));
    return parts.empty() ? std::string("none") : join(parts, ", ");
}

}  // namespace

Placement place_vm(const PveClusterStatus& status, const PveResources& resources, const PlacementRequest& r) {
    Placement p;
    p.single_node = !status.clustered;
    const bool decide = r.phase != PvePhase::Verify;
    const std::string then = phase_consequence(r.phase);
    // Returns true when the caller must stop; in the Verify phase a refusal is only a note.
    auto refuse = [&](const char* reason, std::string message) {
        if (!decide) {
            p.notes.push_back(std::move(message));
            return false;
        }
        p.refused = true;
        p.reason = reason;
        p.message = fmt::format("{} {}", message, then);
        return true;
    };
    const auto* local = status.local();
    p.local_node = local ? local->name : std::string();
    const std::string where = status.clustered ? fmt::format("cluster '{}'", status.name)
                                               : fmt::format("node '{}'", p.local_node);

    // 1. Quorum first: without it /etc/pve is read-only, qm cannot act, and a VM that qm reboot shuts down
    //    is not started again (qm cleanup -> vm_start -> check_cfs_quorum fails).
    if (status.clustered && !status.quorate) {
        std::vector<std::string> online;
        for (const auto& n : status.nodes) {
            if (n.online) online.push_back(n.name);
        }
        if (refuse("no_quorum",
                      fmt::format("Cluster '{}' is not quorate (as seen from node '{}': {} of {} node(s) online: {}): "
                                  "/etc/pve is read-only, qm cannot act, and a VM shut down by 'qm reboot' would not "
                                  "be started again. Restore quorum (pvecm status), then rerun.",
                                  status.name, p.local_node, online.size(), status.nodes.size(),
                                  online.empty() ? std::string("none") : join(online, ", ")))) return p;
    }

    // 2. The inventory's node mapping, validated before anything else is trusted.
    std::set<std::string> seen_nodes;
    std::set<std::string> seen_hosts;
    for (const auto& m : r.mapping) {
        if (m.node.empty()) continue;
        if (!valid_pve_node_name(m.node)) {
            if (refuse("mapping", fmt::format("Inventory host '{}' has pbs_patch_pve_node '{}', which is not a valid "
                                                 "PVE node name. Set it to the node's name (hostname -s on the node).",
                                                 m.host, m.node))) return p;
        }
        if (!seen_nodes.insert(m.node).second) {
            if (refuse("mapping", fmt::format("PVE node '{}' is mapped to more than one inventory host ({}): each "
                                                 "node needs exactly one host. Fix pbs_patch_pve_node.",
                                                 m.node, known_nodes(r.mapping)))) return p;
        }
        if (!seen_hosts.insert(m.host).second) {
            if (refuse("mapping", fmt::format("Inventory host '{}' is listed twice in the node mapping.", m.host))) return p;
        }
        if (status.clustered && !status.find(m.node)) {
            if (refuse("mapping", fmt::format("Inventory host '{}' says it is PVE node '{}', but {} has no such node "
                                                 "(nodes: {}). Fix pbs_patch_pve_node for that host.",
                                                 m.host, m.node, where, join(status.node_names(), ", ")))) return p;
        }
    }
    if (!local) {
        p.refused = true;
        p.reason = "mapping";
        p.message = fmt::format("{} did not say which node answered (no local node). {}", where, then);
        return p;
    }
    std::string asked_node;
    for (const auto& m : r.mapping) {
        if (m.host == r.asked_host) asked_node = m.node;
    }
    if (!asked_node.empty() && asked_node != local->name) {
        if (refuse("mapping", fmt::format("Inventory host '{}' is mapped to PVE node '{}', but it answered as node "
                                             "'{}'. Fix pbs_patch_pve_node (or ansible_host) of '{}'.",
                                             r.asked_host, asked_node, local->name, r.asked_host))) return p;
    }
    if (!r.expect_node.empty() && r.expect_node != local->name) {
        if (refuse("mapping", fmt::format("Inventory host '{}' was expected to be PVE node '{}' but answered as node "
                                             "'{}': the mapping is wrong. Fix pbs_patch_pve_node.",
                                             r.asked_host, r.expect_node, local->name))) return p;
    }

    // 3. The VM: VMID and type qemu, then its name.
    const PveGuest* vm = nullptr;
    const PveGuest* other = nullptr;
    for (const auto& g : resources.guests) {
        if (g.vmid != r.vmid) continue;
        if (g.type == "qemu") vm = &g;
        else other = &g;
    }
    if (!vm) {
        if (other) {
            refuse("container", fmt::format("VMID {} on node '{}' is a {} guest, not a QEMU VM: check "
                                                   "pbs_patch_vmid.",
                                                   r.vmid, other->node, other->type)); return p;
        }
        if (!status.clustered) {
            refuse("not_found", fmt::format("VM {} does not exist on {} (pvesh get /cluster/resources). Check "
                                                   "pbs_patch_vmid.",
                                                   r.vmid, where)); return p;
        }
        refuse("not_found",
                      fmt::format("VM {} does not exist anywhere in {} (nodes: {}; asked node '{}'). Check "
                                  "pbs_patch_vmid; if the VM is being restored or moved, wait and rerun.",
                                  r.vmid, where, join(status.node_names(), ", "), local->name)); return p;
    }
    p.vm = *vm;
    p.node = vm->node;
    if (!r.previous_node.empty() && r.previous_node != vm->node) {
        p.moved = true;
        p.notes.push_back(fmt::format("VM {} moved from node '{}' to node '{}' since the last check", r.vmid,
                                      r.previous_node, vm->node));
    }
    // The inventory host of the VM's node.
    if (!status.clustered) {
        p.host = r.asked_host;
    } else {
        for (const auto& m : r.mapping) {
            if (m.node == vm->node) p.host = m.host;
        }
        if (p.host.empty() && vm->node == local->name && !r.asked_host.empty()) {
            // The asked host is that node (it answered as it) even when it carries no explicit node name.
            p.host = r.asked_host;
            p.notes.push_back(fmt::format("inventory host '{}' answered as node '{}' (no pbs_patch_pve_node set)",
                                          r.asked_host, local->name));
        }
    }
    if (vm->status == "unknown" && vm->name.empty()) {
        if (refuse("unknown_state",
                      fmt::format("VM {} is on node '{}', which reports no state for it (node offline, or pvestatd not "
                                  "running): its name and state cannot be checked. Bring the node back (or migrate the "
                                  "VM to a healthy node), then rerun.",
                                  r.vmid, vm->node))) return p;
    }
    if (vm->name != r.name) {
        if (refuse("wrong_name", fmt::format("VM {} on node '{}' is named '{}', not '{}': wrong VMID? Refusing to "
                                                "touch it.",
                                                r.vmid, vm->node, vm->name, r.name))) return p;
    }
    if (vm->is_template) {
        if (refuse("template", fmt::format("VM {} ({}) is a template, not a running PBS: check pbs_patch_vmid.",
                                              r.vmid, vm->name))) return p;
    }
    if (!vm->lock.empty()) {
        if (refuse("locked", fmt::format("VM {} ({}) on node '{}' is locked ('{}'): {}, then rerun. Nothing acts on a "
                                            "locked VM.",
                                            r.vmid, vm->name, vm->node, vm->lock, lock_hint(vm->lock)))) return p;
    }
    if (status.clustered) {
        const auto* hosting = status.find(vm->node);
        if (hosting && !hosting->online) {
            if (refuse("node_offline", fmt::format("VM {} is listed on node '{}', which is offline. Find out what "
                                                      "happened to the node (HA may recover the VM), then rerun.",
                                                      r.vmid, vm->node))) return p;
        }
        if (p.host.empty()) {
            if (refuse("not_in_inventory",
                          fmt::format("VM {} ({}) runs on node '{}', which is not in the inventory{} (known: {}). Add "
                                      "that node as an inventory host with pbs_patch_pve_node: {}{}, then rerun; no qm "
                                      "command runs on a node the inventory does not name.",
                                      r.vmid, vm->name, vm->node,
                                      r.group.empty() ? std::string() : fmt::format(" group '{}'", r.group),
                                      known_nodes(r.mapping), vm->node,
                                      r.group.empty() ? std::string(" to the group named by pbs_patch_pve_group")
                                                      : fmt::format(" to group '{}'", r.group)))) return p;
        }
    }
    if (!vm->hastate.empty() && vm->hastate != "started" && vm->hastate != "ignored") {
        if (refuse("ha_state",
                      fmt::format("VM {} is HA-managed and its HA state is '{}', not 'started': the HA stack is acting "
                                  "on it or it is in error. Check 'ha-manager status', then rerun.",
                                  r.vmid, vm->hastate))) return p;
    }
    if (r.phase == PvePhase::Reboot && vm->status != "running") {
        if (refuse("not_running", fmt::format("VM {} ({}) on node '{}' is '{}', not running.", r.vmid, vm->name,
                                                 vm->node, vm->status))) return p;
    }
    return p;
}

json VzdumpFinding::to_json() const {
    json j = task.to_json();
    j["storage"] = storage.empty() ? json(nullptr) : json(storage);
    j["storage_source"] = storage_source;
    j["blocks"] = blocks;
    j["why"] = why;
    return j;
}

VzdumpFinding judge_vzdump_task(const PveTask& task, const std::optional<VzdumpJobLine>& log,
                                const std::optional<VzdumpDefaults>& node_defaults,
                                const std::map<std::string, std::string>& targets) {
    VzdumpFinding f;
    f.task = task;
    if (!log || !log->found) {
        f.blocks = true;
        f.storage_source = "unknown";
        f.why = log ? "its log does not name the backup job yet (it may just have started): counted as writing to this PBS"
                    : "its log could not be read: counted as writing to this PBS";
        return f;
    }
    if (!log->dumpdir.empty()) {
        f.storage_source = "command line";
        f.why = fmt::format("dumps to directory {}", log->dumpdir);
        return f;
    }
    if (!log->storage.empty()) {
        f.storage = log->storage;
        f.storage_source = "command line";
    } else if (node_defaults) {
        f.storage_source = fmt::format("vzdump defaults of node {}", task.node);
        if (!node_defaults->storage.empty()) {
            f.storage = node_defaults->storage;
        } else {
            f.why = fmt::format("dumps to directory {} ({})", node_defaults->dumpdir, f.storage_source);
            return f;
        }
    } else {
        f.blocks = true;
        f.storage_source = "unknown";
        f.why = fmt::format("its job sets no storage and the vzdump defaults of node {} could not be read: counted as "
                            "writing to this PBS",
                            task.node);
        return f;
    }
    const auto t = targets.find(f.storage);
    if (t != targets.end()) {
        f.blocks = true;
        f.why = fmt::format("writes to storage '{}' ({}, {}), which is this PBS", f.storage, t->second, f.storage_source);
    } else {
        f.why = fmt::format("writes to storage '{}' ({}), not this PBS", f.storage, f.storage_source);
    }
    return f;
}

namespace {

std::string entry_str(const json& entry, const char* key) {
    const auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) return {};
    return it->is_string() ? it->get<std::string>() : it->dump();
}

bool needs_defaults(const json& job) {
    const std::string type = entry_str(job, "type");
    if (!type.empty() && type != "vzdump") return false;
    return entry_str(job, "storage").empty() && entry_str(job, "dumpdir").empty();
}

std::vector<std::string> job_nodes(const json& job, const std::vector<std::string>& cluster_nodes) {
    const std::string node = trim(entry_str(job, "node"));
    if (!node.empty()) return {node};
    return cluster_nodes;
}

}  // namespace

std::vector<std::string> nodes_needing_defaults(const json& cluster_backup, const std::vector<std::string>& cluster_nodes) {
    if (!cluster_backup.is_array()) throw PveJsonError("pvesh get /cluster/backup: expected a JSON array");
    std::set<std::string> nodes;
    for (const auto& job : cluster_backup) {
        if (!job.is_object()) throw PveJsonError(fmt::format("pvesh get /cluster/backup: entry {} is not an object", job.dump()));
        if (!needs_defaults(job)) continue;
        for (const auto& n : job_nodes(job, cluster_nodes)) nodes.insert(n);
    }
    return {nodes.begin(), nodes.end()};
}

json resolve_job_storage(const json& cluster_backup, const std::map<std::string, VzdumpDefaults>& defaults,
                         const std::vector<std::string>& cluster_nodes, const std::map<std::string, std::string>& targets) {
    (void)nodes_needing_defaults(cluster_backup, cluster_nodes);  // validates the shape
    json out = json::array();
    for (json job : cluster_backup) {
        if (needs_defaults(job)) {
            std::string chosen_storage;
            std::string chosen_from;
            std::string dumpdir_note;
            for (const auto& node : job_nodes(job, cluster_nodes)) {
                const auto d = defaults.find(node);
                if (d == defaults.end()) continue;
                if (d->second.storage.empty()) {
                    if (dumpdir_note.empty()) {
                        dumpdir_note = fmt::format("vzdump defaults of node {}: dumpdir {}", node, d->second.dumpdir);
                    }
                    continue;
                }
                const bool ours = targets.count(d->second.storage) > 0;
                if (chosen_storage.empty() || (ours && !targets.count(chosen_storage))) {
                    chosen_storage = d->second.storage;
                    chosen_from = fmt::format("storage from the vzdump defaults of node {}", node);
                }
            }
            if (!chosen_storage.empty()) {
                job["storage"] = chosen_storage;
                job["storage_from"] = chosen_from;
            } else {
                job["storage_from"] = dumpdir_note.empty() ? std::string("no node that runs it was readable")
                                                           : dumpdir_note;
            }
        }
        out.push_back(std::move(job));
    }
    return out;
}

}  // namespace pbs_patch
