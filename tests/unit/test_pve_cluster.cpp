// Proxmox VE's JSON: /cluster/status, /cluster/resources, /cluster/tasks, task logs, vzdump defaults, and the
// strict number readers. The samples are written from the shapes in pve-manager (PVE/API2/Cluster.pm get_status,
// resources, tasks; PVE/API2Tools.pm extract_vm_stats; PVE/API2/Tasks.pm read_task_log; PVE/API2/VZDump.pm
// defaults), pve-common (PVE/UPID.pm, INotify.pm read_active_workers) and pve-guest-common
// (PVE/VZDump/Common.pm command_line): no PVE host to record from here.
#include "fixtures.hpp"
#include "pbs_patch/pve_cluster.hpp"
#include "pbs_patch/pve_json.hpp"
#include "pbs_patch/pve_tasks.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;
using nlohmann::json;

TEST_CASE("pve json: integers as numbers or digit strings, in range; anything else is an error") {
    const json e = json::parse(R"({"a": 5, "b": "7", "c": 1.5, "d": -1, "e": 18446744073709551615,
                                   "f": 1e30, "g": "12x", "h": true, "i": null, "j": "99999999999999999999"})");
    CHECK(pve_int(e, "a", 0, 10, "t") == 5);
    CHECK(pve_int(e, "b", 0, 10, "t") == 7);
    CHECK_FALSE(pve_int(e, "missing", 0, 10, "t"));
    CHECK_FALSE(pve_int(e, "i", 0, 10, "t"));
    CHECK_THROWS_WITH_AS(pve_int(e, "a", 0, 4, "t"), doctest::Contains("out of range (0..4)"), PveJsonError);
    CHECK_THROWS_WITH_AS(pve_int(e, "c", 0, 10, "t"), doctest::Contains("not an integer"), PveJsonError);
    CHECK_THROWS_WITH_AS(pve_int(e, "d", 0, 10, "t"), doctest::Contains("out of range"), PveJsonError);
    CHECK_THROWS_WITH_AS(pve_int(e, "e", 0, INT64_MAX, "t"), doctest::Contains("out of range"), PveJsonError);
    CHECK_THROWS_WITH_AS(pve_int(e, "f", 0, INT64_MAX, "t"), doctest::Contains("out of range"), PveJsonError);
    CHECK_THROWS_WITH_AS(pve_int(e, "g", 0, 10, "t"), doctest::Contains("not an integer"), PveJsonError);
    CHECK_THROWS_AS(pve_int(e, "h", 0, 10, "t"), PveJsonError);
    CHECK_THROWS_WITH_AS(pve_int(e, "j", 0, INT64_MAX, "t"), doctest::Contains("out of range"), PveJsonError);
    const json f = json::parse(R"({"one": 1, "zero": "0", "t": true, "two": 2, "s": "yes"})");
    CHECK(pve_flag(f, "one", "t") == true);
    CHECK(pve_flag(f, "zero", "t") == false);
    CHECK(pve_flag(f, "t", "t") == true);
    CHECK_THROWS_AS(pve_flag(f, "two", "t"), PveJsonError);
    CHECK_THROWS_AS(pve_flag(f, "s", "t"), PveJsonError);
    CHECK(valid_pve_node_name("pve-2"));
    CHECK_FALSE(valid_pve_node_name("-pve"));
    CHECK_FALSE(valid_pve_node_name("pve.lan"));
    CHECK_FALSE(valid_pve_node_name(""));
}

TEST_CASE("cluster status: a quorate three-node cluster, the answering node marked local") {
    const auto st = parse_cluster_status(fixture("pvesh_cluster_status_quorate.json"));
    CHECK(st.clustered);
    CHECK(st.name == "homelab");
    CHECK(st.quorate);
    CHECK(st.node_count == 3);
    CHECK(st.version == 7);
    REQUIRE(st.nodes.size() == 3);
    REQUIRE(st.local());
    CHECK(st.local()->name == "pve");
    REQUIRE(st.find("pve3"));
    CHECK(st.find("pve3")->online);
    CHECK(st.find("pve3")->ip == "192.168.10.13");
    CHECK_FALSE(st.find("pve9"));
}

TEST_CASE("cluster status: lost quorum; a single node has no cluster entry") {
    const auto lost = parse_cluster_status(fixture("pvesh_cluster_status_no_quorum.json"));
    CHECK(lost.clustered);
    CHECK_FALSE(lost.quorate);
    CHECK_FALSE(lost.find("pve2")->online);
    const auto single = parse_cluster_status(fixture("pvesh_cluster_status_single.json"));
    CHECK_FALSE(single.clustered);
    REQUIRE(single.local());
    CHECK(single.local()->name == "pve");
    CHECK(single.to_json()["node_count"] == 1);
}

TEST_CASE("cluster status: malformed shapes fail closed") {
    CHECK_THROWS_AS(parse_cluster_status("[]"), PveJsonError);                        // no nodes
    CHECK_THROWS_AS(parse_cluster_status("{\"type\":\"node\"}"), PveJsonError);       // not an array
    CHECK_THROWS_WITH_AS(parse_cluster_status(R"([{"type":"cluster","name":"x"},{"type":"node","name":"a","local":1}])"),
                         doctest::Contains("without 'quorate'"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_status(R"([{"type":"cluster","quorate":2},{"type":"node","name":"a"}])"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_status(R"([{"type":"node","name":"a","nodeid":4294967296}])"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_status(R"([{"type":"node","name":"a","local":1},{"type":"node","name":"b","local":1}])"),
                    PveJsonError);
    CHECK_THROWS_AS(parse_cluster_status(R"([{"type":"node","name":"a"},{"type":"node","name":"a"}])"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_status("Connection refused"), PveJsonError);
}

TEST_CASE("cluster resources: guests only (pool, node and storage entries skipped), lock and HA state read") {
    const auto all = parse_cluster_resources(fixture("pvesh_cluster_resources_all.json"));
    CHECK(all.other_entries == 3);
    REQUIRE(all.guests.size() == 5);
    const auto& pbs = all.guests[0];
    CHECK(pbs.id == "qemu/104");
    CHECK(pbs.type == "qemu");
    CHECK(pbs.vmid == 104);
    CHECK(pbs.node == "pve2");
    CHECK(pbs.name == "pbs");
    CHECK(pbs.status == "running");
    CHECK(pbs.hastate == "started");
    CHECK(pbs.pool == "infra");
    CHECK(pbs.lock.empty());
    CHECK(pbs.uptime == 86412);
    CHECK_FALSE(pbs.is_template);
    CHECK(all.guests[1].lock == "migrate");
    CHECK(all.guests[2].type == "lxc");
    CHECK(all.guests[3].is_template);
    CHECK(all.guests[4].status == "unknown");  // a node without stats: no name
    CHECK(all.guests[4].name.empty());
    const auto vm = parse_cluster_resources(fixture("pvesh_cluster_resources_vm.json"));
    CHECK(vm.other_entries == 0);
    CHECK(vm.guests.size() == 3);
}

TEST_CASE("cluster resources: out-of-range and ill-typed numbers are parse errors") {
    CHECK_THROWS_WITH_AS(parse_cluster_resources(R"([{"type":"qemu","id":"qemu/99","vmid":99,"node":"a"}])"),
                         doctest::Contains("out of range"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_resources(R"([{"type":"qemu","id":"qemu/1000000000","vmid":1000000000,"node":"a"}])"),
                    PveJsonError);
    CHECK_THROWS_AS(parse_cluster_resources(R"([{"type":"qemu","id":"qemu/100","vmid":100,"node":"a","uptime":-5}])"),
                    PveJsonError);
    CHECK_THROWS_AS(
        parse_cluster_resources(R"([{"type":"qemu","id":"qemu/100","vmid":100,"node":"a","mem":99999999999999999999}])"),
        PveJsonError);
    CHECK_THROWS_AS(parse_cluster_resources(R"([{"type":"qemu","id":"qemu/100","vmid":100.5,"node":"a"}])"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_resources(R"([{"type":"qemu","id":"qemu/100","node":"a"}])"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_resources(R"([{"type":"qemu","id":"qemu/100","vmid":100}])"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_resources(R"([{"id":"qemu/100"}])"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_resources(R"([{"type":"qemu","id":"qemu/100","vmid":100,"node":"a","template":3}])"),
                    PveJsonError);
    CHECK(parse_cluster_resources(R"([{"type":"qemu","id":"qemu/100","vmid":"100","node":"a"}])").guests[0].vmid == 100);
}

TEST_CASE("PVE UPIDs: the PVE::UPID format (not PBS's), 9-digit pstart, empty id") {
    const auto u = parse_pve_upid("UPID:pve3:000C66BE:0B2F0E41:692E59B4:vzdump::root@pam:");
    REQUIRE(u);
    CHECK(u->node == "pve3");
    CHECK(u->pid == 0xC66BE);
    CHECK(u->starttime == 0x692E59B4);
    CHECK(u->type == "vzdump");
    CHECK(u->id.empty());
    CHECK(u->user == "root@pam");
    CHECK(parse_pve_upid("UPID:pve:0000B043:10B2F5A10:692E5AE0:qmreboot:104:root@pam:"));
    CHECK_FALSE(parse_pve_upid("UPID:pve:0000B043:0B2F5A10:692E5AE0:qmreboot:104:root@pam"));  // no final colon
    CHECK_FALSE(parse_pve_upid("UPID:elsa:00004F37:0039E469:00000000:5CA78B83:garbage_collection::root@pam:"));  // PBS
    CHECK_FALSE(parse_pve_upid("UPID:pve:B043:0B2F5A10:692E5AE0:vzdump::root@pam:"));
    CHECK_FALSE(parse_pve_upid("UPID:pve:0000B043:0B2F5A10:692E5AE0:vz dump::root@pam:"));
}

TEST_CASE("cluster tasks: running = no endtime; entries agree with their UPID") {
    const auto tasks = parse_cluster_tasks(fixture("pvesh_cluster_tasks.json"));
    REQUIRE(tasks.size() == 5);
    CHECK(tasks[0].running());
    CHECK(tasks[0].type == "vzdump");
    CHECK(tasks[0].node == "pve3");
    CHECK(tasks[0].id.empty());
    CHECK(tasks[1].id == "201");
    CHECK_FALSE(tasks[2].running());
    CHECK(tasks[2].status == "OK");
    CHECK(tasks[3].status == "job errors");
    CHECK(tasks[4].type == "qmigrate");
    CHECK(tasks[4].user == "root@pam");
    CHECK(parse_cluster_tasks("[]").empty());
    CHECK_THROWS_WITH_AS(parse_cluster_tasks(R"([{"upid":"nope"}])"), doctest::Contains("not a PVE UPID"), PveJsonError);
    CHECK_THROWS_WITH_AS(parse_cluster_tasks(R"([{"upid":"UPID:pve:0000B043:0B2F5A10:692E5AE0:vzdump::root@pam:",
                                                  "node":"pve2"}])"),
                         doctest::Contains("disagrees"), PveJsonError);
    CHECK_THROWS_AS(parse_cluster_tasks(R"([{"upid":"UPID:pve:0000B043:0B2F5A10:692E5AE0:vzdump::root@pam:",
                                             "endtime":4294967296}])"),
                    PveJsonError);
}

TEST_CASE("task log and the vzdump job line: storage, dumpdir, node, quoted values") {
    const auto lines = parse_task_log(fixture("pvesh_task_log_vzdump_job.json"));
    REQUIRE(lines.size() == 4);
    const auto job = find_vzdump_job_line(lines);
    CHECK(job.found);
    CHECK(job.all);
    CHECK(job.storage == "pbs1");
    CHECK(job.node == "pve3");
    CHECK(job.vmids.empty());
    const auto nostorage = find_vzdump_job_line(parse_task_log(fixture("pvesh_task_log_vzdump_nostorage.json")));
    CHECK(nostorage.found);
    CHECK(nostorage.storage.empty());
    CHECK(nostorage.vmids == std::vector<std::string>{"201"});
    CHECK_FALSE(find_vzdump_job_line({"INFO: Starting Backup of VM 201 (qemu)"}).found);
    const auto dumpdir = find_vzdump_job_line({"INFO: starting new backup job: vzdump 100 101 --dumpdir '/mnt/b k'"});
    CHECK(dumpdir.dumpdir == "/mnt/b k");
    CHECK(dumpdir.vmids.size() == 2);
    CHECK(split_shell_words("a 'b c' 'it'\\''s' d") == std::vector<std::string>{"a", "b c", "it's", "d"});
    CHECK_THROWS_AS(parse_task_log(R"([{"n":1}])"), PveJsonError);
    CHECK_THROWS_AS(parse_task_log(R"({"n":1,"t":"x"})"), PveJsonError);
}

TEST_CASE("vzdump defaults: storage (PVE answers 'local' when unset), or a dumpdir") {
    CHECK(parse_vzdump_defaults(fixture("pvesh_vzdump_defaults_local.json")).storage == "local");
    CHECK(parse_vzdump_defaults(fixture("pvesh_vzdump_defaults_pbs.json")).storage == "pbs1");
    const auto d = parse_vzdump_defaults(fixture("pvesh_vzdump_defaults_dumpdir.json"));
    CHECK(d.storage.empty());
    CHECK(d.dumpdir == "/mnt/backup/dump");
    CHECK_THROWS_AS(parse_vzdump_defaults(R"({"mode":"snapshot"})"), PveJsonError);
    CHECK_THROWS_AS(parse_vzdump_defaults("[]"), PveJsonError);
}
