// What a Proxmox VE cluster says about itself: `pvesh get /cluster/status` (quorum, nodes, which node
// answered) and `pvesh get /cluster/resources --type vm` (every guest: node, state, lock, HA state).
// Shapes from pve-manager PVE/API2/Cluster.pm (get_status, resources) and PVE/API2Tools.pm extract_vm_stats.
#pragma once

#include "pbs_patch/pve_json.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pbs_patch {

// One guest (type qemu, lxc or the long-gone openvz) of /cluster/resources.
struct PveGuest {
    std::string id;       // "qemu/104"
    std::string type;     // qemu | lxc | openvz
    std::int64_t vmid = 0;
    std::string node;
    std::string name;     // empty when the node reports no stats (status "unknown")
    std::string status;   // running | stopped | paused | unknown | ...
    std::string lock;     // config lock: migrate, backup, snapshot, ... ("" = none)
    std::string hastate;  // HA service state, "" when not HA-managed
    std::string pool;
    std::int64_t uptime = 0;
    bool is_template = false;

    nlohmann::json to_json() const;
};

struct PveResources {
    std::vector<PveGuest> guests;
    std::size_t other_entries = 0;  // pool, node, storage, sdn, ... entries (skipped by type)
};

// Throws PveJsonError unless the text is a JSON array of objects each with a `type`; guests need an `id`, a
// `vmid` in PVE's range (100..999999999) and a `node`.
PveResources parse_cluster_resources(std::string_view text);

struct PveNodeStatus {
    std::string name;
    std::int64_t nodeid = 0;
    bool online = false;
    bool local = false;  // the node that answered
    std::string ip;
};

struct PveClusterStatus {
    bool clustered = false;  // a `cluster` entry exists; a single node has none
    std::string name;        // cluster name
    bool quorate = false;    // only meaningful when clustered
    std::int64_t node_count = 0;
    std::int64_t version = 0;
    std::vector<PveNodeStatus> nodes;

    const PveNodeStatus* local() const;
    const PveNodeStatus* find(std::string_view node) const;
    std::vector<std::string> node_names() const;
    nlohmann::json to_json() const;
};

// Throws PveJsonError on anything but the documented shape: one `cluster` entry at most (with `quorate`),
// at least one `node` entry, at most one of them `local`.
PveClusterStatus parse_cluster_status(std::string_view text);

}  // namespace pbs_patch
