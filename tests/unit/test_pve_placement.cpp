// PVE-side decisions on the recorded-shape samples: where the PBS VM is and whether it may be touched, running
// vzdump tasks that write to this PBS, and the storage of vzdump jobs that set none.
#include "fixtures.hpp"
#include "pbs_patch/pbs_jobs.hpp"
#include "pbs_patch/pve_placement.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;
using nlohmann::json;

namespace {

const std::vector<NodeMapping> kThree = {{"pve1", "pve"}, {"pve2", "pve2"}, {"pve3", "pve3"}};

PlacementRequest request(const char* asked = "pve1", std::vector<NodeMapping> mapping = kThree) {
    PlacementRequest r;
    r.vmid = 104;
    r.name = "pbs";
    r.mapping = std::move(mapping);
    r.group = "pve_cluster";
    r.asked_host = asked;
    return r;
}

PveClusterStatus quorate() { return parse_cluster_status(fixture("pvesh_cluster_status_quorate.json")); }
PveResources guests() { return parse_cluster_resources(fixture("pvesh_cluster_resources_all.json")); }

PveResources with(std::function<void(PveGuest&)> change) {
    auto r = guests();
    change(r.guests[0]);
    return r;
}

}  // namespace

TEST_CASE("placement: the VM on another node than the one asked -> that node's inventory host") {
    const auto p = place_vm(quorate(), guests(), request());
    CHECK_FALSE(p.refused);
    CHECK_FALSE(p.single_node);
    CHECK(p.local_node == "pve");
    CHECK(p.node == "pve2");
    CHECK(p.host == "pve2");
    REQUIRE(p.vm);
    CHECK(p.vm->hastate == "started");
    CHECK_FALSE(p.moved);
}

TEST_CASE("placement: a move since the last check is reported") {
    auto r = request();
    r.previous_node = "pve3";
    const auto p = place_vm(quorate(), guests(), r);
    CHECK_FALSE(p.refused);
    CHECK(p.moved);
    REQUIRE(p.notes.size() == 1);
    CHECK(p.notes[0].find("moved from node 'pve3' to node 'pve2'") != std::string::npos);
}

TEST_CASE("placement: no quorum refuses first, saying why and what to do") {
    const auto p = place_vm(parse_cluster_status(fixture("pvesh_cluster_status_no_quorum.json")), guests(), request());
    CHECK(p.refused);
    CHECK(p.reason == "no_quorum");
    CHECK(p.message.find("not quorate") != std::string::npos);
    CHECK(p.message.find("1 of 3 node(s) online: pve") != std::string::npos);
    CHECK(p.message.find("pvecm status") != std::string::npos);
    CHECK(p.message.find("Nothing was changed.") != std::string::npos);
}

TEST_CASE("placement: a wrong node mapping is refused before the VM is looked at") {
    SUBCASE("the asked host answers as another node") {
        const auto p = place_vm(quorate(), guests(), request("pve2"));
        CHECK(p.refused);
        CHECK(p.reason == "mapping");
        CHECK(p.message.find("answered as node 'pve'") != std::string::npos);
    }
    SUBCASE("a node the cluster does not have") {
        const auto p = place_vm(quorate(), guests(), request("pve1", {{"pve1", "pve"}, {"pve9", "pve9"}}));
        CHECK(p.reason == "mapping");
        CHECK(p.message.find("no such node") != std::string::npos);
    }
    SUBCASE("one node for two hosts") {
        const auto p = place_vm(quorate(), guests(), request("pve1", {{"pve1", "pve"}, {"pve1b", "pve"}}));
        CHECK(p.reason == "mapping");
        CHECK(p.message.find("more than one inventory host") != std::string::npos);
    }
    SUBCASE("expect_node") {
        auto r = request();
        r.expect_node = "pve2";
        const auto p = place_vm(quorate(), guests(), r);
        CHECK(p.reason == "mapping");
    }
}

TEST_CASE("placement: VM nowhere, a container, another name, a template, unknown state") {
    auto r = request();
    r.vmid = 150;
    auto p = place_vm(quorate(), guests(), r);
    CHECK(p.reason == "not_found");
    CHECK(p.message.find("does not exist anywhere in cluster 'homelab'") != std::string::npos);
    r.vmid = 200;
    CHECK(place_vm(quorate(), guests(), r).reason == "container");
    p = place_vm(quorate(), guests(), [] { auto q = request(); q.name = "pbs-old"; return q; }());
    CHECK(p.reason == "wrong_name");
    CHECK(p.message.find("is named 'pbs', not 'pbs-old': wrong VMID?") != std::string::npos);
    CHECK(place_vm(quorate(), with([](PveGuest& g) { g.is_template = true; }), request()).reason == "template");
    r.vmid = 120;
    r.name = "";
    CHECK(place_vm(quorate(), guests(), r).reason == "unknown_state");
}

TEST_CASE("placement: a locked VM is never touched; the lock's meaning is explained") {
    auto p = place_vm(quorate(), with([](PveGuest& g) { g.lock = "migrate"; }), request());
    CHECK(p.refused);
    CHECK(p.reason == "locked");
    CHECK(p.message.find("is locked ('migrate'): a migration is in progress") != std::string::npos);
    p = place_vm(quorate(), with([](PveGuest& g) { g.lock = "backup"; }), request());
    CHECK(p.message.find("vzdump backup") != std::string::npos);
}

TEST_CASE("placement: the hosting node must be in the inventory and online") {
    auto p = place_vm(quorate(), guests(), request("pve1", {{"pve1", "pve"}, {"pve3", "pve3"}}));
    CHECK(p.reason == "not_in_inventory");
    CHECK(p.message.find("runs on node 'pve2', which is not in the inventory group 'pve_cluster'") != std::string::npos);
    CHECK(p.message.find("pbs_patch_pve_node: pve2") != std::string::npos);
    auto st = quorate();
    for (auto& n : st.nodes) {
        if (n.name == "pve2") n.online = false;
    }
    CHECK(place_vm(st, guests(), request()).reason == "node_offline");
}

TEST_CASE("placement: HA state must be started or ignored; in the reboot phase the VM must run") {
    CHECK(place_vm(quorate(), with([](PveGuest& g) { g.hastate = "ignored"; }), request()).refused == false);
    const auto p = place_vm(quorate(), with([](PveGuest& g) { g.hastate = "stopped"; }), request());
    CHECK(p.reason == "ha_state");
    auto r = request();
    r.phase = PvePhase::Reboot;
    const auto stopped = place_vm(quorate(), with([](PveGuest& g) { g.status = "stopped"; }), r);
    CHECK(stopped.reason == "not_running");
    CHECK(stopped.message.find("PBS was NOT rebooted") != std::string::npos);
    r.phase = PvePhase::Verify;
    const auto v = place_vm(quorate(), with([](PveGuest& g) { g.lock = "backup"; }), r);
    CHECK_FALSE(v.refused);  // after the reboot: located and reported, never refused
    CHECK(v.node == "pve2");
}

TEST_CASE("placement: a single node needs no mapping and keeps today's messages") {
    const auto single = parse_cluster_status(fixture("pvesh_cluster_status_single.json"));
    auto res = guests();
    for (auto& g : res.guests) g.node = "pve";
    auto r = request("pve", {});
    auto p = place_vm(single, res, r);
    CHECK_FALSE(p.refused);
    CHECK(p.single_node);
    CHECK(p.host == "pve");
    r.vmid = 150;
    p = place_vm(single, res, r);
    CHECK(p.message.find("VM 150 does not exist on node 'pve'") != std::string::npos);
}

TEST_CASE("running vzdump tasks: writes to this PBS (command line or node defaults) blocks; unknown blocks") {
    const auto storages = json::parse(fixture("pvesh_storage.json"));
    const auto targets = pbs_target_storages(storages, {"pbs.lab.lan"}, {});
    REQUIRE(targets.count("pbs1") == 1);
    const auto tasks = parse_cluster_tasks(fixture("pvesh_cluster_tasks.json"));
    const auto job = find_vzdump_job_line(parse_task_log(fixture("pvesh_task_log_vzdump_job.json")));
    auto f = judge_vzdump_task(tasks[0], job, std::nullopt, targets);
    CHECK(f.blocks);
    CHECK(f.storage == "pbs1");
    CHECK(f.storage_source == "command line");
    const auto nostorage = find_vzdump_job_line(parse_task_log(fixture("pvesh_task_log_vzdump_nostorage.json")));
    f = judge_vzdump_task(tasks[1], nostorage, parse_vzdump_defaults(fixture("pvesh_vzdump_defaults_local.json")), targets);
    CHECK_FALSE(f.blocks);
    CHECK(f.why.find("not this PBS") != std::string::npos);
    f = judge_vzdump_task(tasks[1], nostorage, parse_vzdump_defaults(fixture("pvesh_vzdump_defaults_pbs.json")), targets);
    CHECK(f.blocks);
    CHECK(f.storage_source == "vzdump defaults of node pve");
    f = judge_vzdump_task(tasks[1], nostorage, parse_vzdump_defaults(fixture("pvesh_vzdump_defaults_dumpdir.json")), targets);
    CHECK_FALSE(f.blocks);
    CHECK(judge_vzdump_task(tasks[1], nostorage, std::nullopt, targets).blocks);   // defaults unreadable
    CHECK(judge_vzdump_task(tasks[1], std::nullopt, std::nullopt, targets).blocks);  // log unreadable
    CHECK(judge_vzdump_task(tasks[1], VzdumpJobLine{}, std::nullopt, targets).blocks);  // not logged yet
}

TEST_CASE("vzdump jobs without storage: resolved through the defaults of the nodes that run them") {
    const auto storages = json::parse(fixture("pvesh_storage.json"));
    const auto targets = pbs_target_storages(storages, {}, {});
    const auto jobs = json::parse(fixture("pvesh_cluster_backup.json"));
    const std::vector<std::string> nodes = {"pve", "pve2"};
    CHECK(nodes_needing_defaults(jobs, nodes) == nodes);
    std::map<std::string, VzdumpDefaults> defaults = {{"pve", {"local", "/var/lib/vz/dump"}}, {"pve2", {"pbs1", ""}}};
    const auto resolved = resolve_job_storage(jobs, defaults, nodes, targets);
    REQUIRE(resolved.size() == jobs.size());
    const auto& job = resolved[5];
    CHECK(job["id"] == "backup-nostorage-05");
    CHECK(job["storage"] == "pbs1");  // pve2 writes it to this PBS: that wins over pve's local
    CHECK(job["storage_from"] == "storage from the vzdump defaults of node pve2");
    const auto window = select_pve_backup_jobs(resolved, storages, {}, {});
    bool gated = false;
    for (const auto& j : window.jobs) gated = gated || (j.id == "backup-nostorage-05");
    CHECK(gated);
    // Defaults that are not this PBS: listed as ignored, saying where the storage came from.
    defaults["pve2"] = {"local", ""};
    const auto other = select_pve_backup_jobs(resolve_job_storage(jobs, defaults, nodes, targets), storages, {}, {});
    bool explained = false;
    for (const auto& i : other.ignored) {
        if (i.id == "backup-nostorage-05") explained = i.reason.find("vzdump defaults of node") != std::string::npos;
    }
    CHECK(explained);
    CHECK_THROWS_AS(nodes_needing_defaults(json::object(), nodes), PveJsonError);
}
