// Parsers of /cluster/status and /cluster/resources (pve-manager PVE/API2/Cluster.pm).
#include "pbs_patch/pve_cluster.hpp"

#include <fmt/format.h>

#include <limits>

namespace pbs_patch {

using nlohmann::json;

namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kVmidMin = 100;        // pve-vmid (PVE::JSONSchema)
constexpr std::int64_t kVmidMax = 999999999;
constexpr std::int64_t kUint32Max = 0xFFFFFFFF;

}  // namespace

json PveGuest::to_json() const {
    json j{{"id", id},     {"type", type},     {"vmid", vmid},       {"node", node},
           {"name", name}, {"status", status}, {"uptime", uptime},   {"template", is_template},
           {"lock", lock.empty() ? json(nullptr) : json(lock)},
           {"hastate", hastate.empty() ? json(nullptr) : json(hastate)},
           {"pool", pool.empty() ? json(nullptr) : json(pool)}};
    return j;
}

PveResources parse_cluster_resources(std::string_view text) {
    const std::string what = "pvesh get /cluster/resources";
    PveResources out;
    for (const auto& entry : parse_pve_object_array(text, what)) {
        const std::string type = pve_required_str(entry, "type", what);
        if (type != "qemu" && type != "lxc" && type != "openvz") {
            ++out.other_entries;
            continue;
        }
        PveGuest g;
        g.type = type;
        g.id = pve_required_str(entry, "id", what);
        const auto vmid = pve_int(entry, "vmid", kVmidMin, kVmidMax, what);
        if (!vmid) throw PveJsonError(fmt::format("{}: guest entry without 'vmid': {}", what, entry.dump()));
        g.vmid = *vmid;
        g.node = pve_required_str(entry, "node", what);
        if (!valid_pve_node_name(g.node)) {
            throw PveJsonError(fmt::format("{}: guest {} has an invalid node name '{}'", what, g.id, g.node));
        }
        g.name = pve_str(entry, "name", what);
        g.status = pve_str(entry, "status", what);
        if (g.status.empty()) g.status = "unknown";
        g.lock = pve_str(entry, "lock", what);
        g.hastate = pve_str(entry, "hastate", what);
        g.pool = pve_str(entry, "pool", what);
        g.uptime = pve_int(entry, "uptime", 0, kInt64Max, what).value_or(0);
        g.is_template = pve_flag(entry, "template", what).value_or(false);
        // The numbers we do not use still have to be numbers of their kind: garbage is not "fine".
        for (const char* key : {"maxmem", "mem", "maxdisk", "disk", "netin", "netout", "diskread", "diskwrite"}) {
            (void)pve_int(entry, key, 0, kInt64Max, what);
        }
        out.guests.push_back(std::move(g));
    }
    return out;
}

const PveNodeStatus* PveClusterStatus::local() const {
    for (const auto& n : nodes) {
        if (n.local) return &n;
    }
    return nullptr;
}

const PveNodeStatus* PveClusterStatus::find(std::string_view node) const {
    for (const auto& n : nodes) {
        if (n.name == node) return &n;
    }
    return nullptr;
}

std::vector<std::string> PveClusterStatus::node_names() const {
    std::vector<std::string> names;
    for (const auto& n : nodes) names.push_back(n.name);
    return names;
}

json PveClusterStatus::to_json() const {
    json list = json::array();
    for (const auto& n : nodes) {
        list.push_back({{"name", n.name}, {"nodeid", n.nodeid}, {"online", n.online}, {"local", n.local}, {"ip", n.ip}});
    }
    return {{"clustered", clustered},
            {"name", clustered ? json(name) : json(nullptr)},
            {"quorate", clustered ? json(quorate) : json(nullptr)},
            {"node_count", clustered ? json(node_count) : json(static_cast<std::int64_t>(nodes.size()))},
            {"version", clustered ? json(version) : json(nullptr)},
            {"nodes", list}};
}

PveClusterStatus parse_cluster_status(std::string_view text) {
    const std::string what = "pvesh get /cluster/status";
    PveClusterStatus st;
    int locals = 0;
    for (const auto& entry : parse_pve_object_array(text, what)) {
        const std::string type = pve_required_str(entry, "type", what);
        if (type == "cluster") {
            if (st.clustered) throw PveJsonError(fmt::format("{}: more than one 'cluster' entry", what));
            st.clustered = true;
            st.name = pve_str(entry, "name", what);
            const auto quorate = pve_flag(entry, "quorate", what);
            // Fail closed: a cluster entry that does not say it is quorate is not quorate.
            if (!quorate) throw PveJsonError(fmt::format("{}: cluster entry without 'quorate': {}", what, entry.dump()));
            st.quorate = *quorate;
            st.node_count = pve_int(entry, "nodes", 0, kUint32Max, what).value_or(0);
            st.version = pve_int(entry, "version", 0, kUint32Max, what).value_or(0);
        } else if (type == "node") {
            PveNodeStatus n;
            n.name = pve_required_str(entry, "name", what);
            if (!valid_pve_node_name(n.name)) {
                throw PveJsonError(fmt::format("{}: invalid node name '{}'", what, n.name));
            }
            n.nodeid = pve_int(entry, "nodeid", 0, kUint32Max, what).value_or(0);
            n.online = pve_flag(entry, "online", what).value_or(false);
            n.local = pve_flag(entry, "local", what).value_or(false);
            n.ip = pve_str(entry, "ip", what);
            if (n.local) ++locals;
            if (st.find(n.name)) throw PveJsonError(fmt::format("{}: node '{}' listed twice", what, n.name));
            st.nodes.push_back(std::move(n));
        }
        // Other entry types (none today) say nothing about quorum or nodes: skipped.
    }
    if (st.nodes.empty()) throw PveJsonError(fmt::format("{}: no node entries", what));
    if (locals > 1) throw PveJsonError(fmt::format("{}: more than one node marked local", what));
    return st;
}

}  // namespace pbs_patch
