"""pve_cluster through the real ansible-playbook on localhost, against the lab's PVE stand-ins (lab/bin/pvesh and
the per-node wrappers) with a state directory per case, no VM needed (the VM reads as 'stopped').

All cases run as items of one loop in one playbook (one Ansible start on this slow machine); each item sets its
own PBS_PATCH_LAB_STATE and node identity.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_runner import MODULES, REPO, VENV_BIN

sys.path.insert(0, str(REPO / "lab"))

NODES = [{"host": "pve1", "node": "pve1"}, {"host": "pve2", "node": "pve2"}, {"host": "pve3", "node": "pve3"}]
CONF = "agent: 1\nmemory: 1024\nname: pbs\nsmbios1: uuid=6f1e2c3a-1111-2222-3333-444455556666\n"


def make_state(root: Path, name: str, *, cluster=True, vm_on="pve1", lock=None, quorum=True, ha=None,
               tasks=None, logs=None, defaults=None, backup=None, fail=None) -> Path:
    """A lab PVE side in its own state dir, built with the lab's own code (pbslab.pve) in a subprocess."""
    state = root / name
    state.mkdir(parents=True)
    (state / "vm-100.conf").write_text(CONF)
    if not quorum:
        (state / "faults").mkdir()
        (state / "faults" / "no-quorum").write_text("on\n")
    pvesh = state / "pvesh"
    pvesh.mkdir()
    for fname, data in {"cluster-tasks.json": tasks, "cluster-backup.json": backup}.items():
        if data is not None:
            (pvesh / fname).write_text(json.dumps(data))
    for node, d in (defaults or {}).items():
        (pvesh / f"vzdump-defaults-{node}.json").write_text(json.dumps(d))
    if logs:
        (pvesh / "task-logs").mkdir()
        for upid, lines in logs.items():
            (pvesh / "task-logs" / f"{upid}.json").write_text(json.dumps(lines))
    if fail:
        (pvesh / f"{fail}.fail").write_text("ipcc_send_rec[1] failed: Connection refused\n")
    code = ("from pbslab import pve\n"
            "pve.make_single_node()\n"
            + (f"pve.make_cluster({vm_on!r})\n" if cluster else "")
            + (f"pve.set_conf_key('lock', {lock!r})\n" if lock else "")
            + (f"pve.set_ha_state({ha!r})\n" if ha else ""))
    env = dict(os.environ, PBS_PATCH_LAB_STATE=str(state), PBS_PATCH_LAB_NODE="pve")
    subprocess.run([sys.executable, "-c", code], cwd=REPO / "lab", env=env, check=True)
    return state


def upid(node, start, type_="vzdump", id_=""):
    return "UPID:%s:%08X:%08X:%08X:%s:%s:root@pam:" % (node, 4242, 0x1000, start, type_, id_)


def run_cases(tmp_path, cases: dict[str, dict]):
    """Every case {state, node, args} through one playbook; returns name -> registered result."""
    items = []
    for name, c in cases.items():
        node = c.get("node", "pve1")
        pvesh = REPO / "lab" / "bin" / ("pvesh" if node == "pve" else f"nodes/{node}/pvesh")
        args = {"vmid": 100, "name": "pbs", "nodes": NODES, "group": "pve_cluster", "asked_host": node,
                "pvesh": str(pvesh), **c.get("args", {})}
        items.append({"name": name, "state": str(c["state"]), "node": node, "args": args,
                      "check": c.get("check", False)})
    out = tmp_path / "results.json"
    call = {"cfolino.pbs.pve_cluster": "{{ item.args }}", "loop_control": {"label": "{{ item.name }}"},
            "ignore_errors": True,
            "environment": {"PBS_PATCH_LAB_STATE": "{{ item.state }}", "PBS_PATCH_LAB_NODE": "{{ item.node }}"}}
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Call pve_cluster", **call, "loop": [i for i in items if not i["check"]], "register": "__r"},
        {"name": "Call pve_cluster in check mode", **call, "loop": [i for i in items if i["check"]],
         "register": "__c", "check_mode": True},
        {"name": "Save", "ansible.builtin.copy": {"content": "{{ (__r.results + __c.results) | to_json }}",
                                                  "dest": str(out), "mode": "0600"}, "check_mode": False}]}]
    pb = tmp_path / "play.yml"
    pb.write_text(json.dumps(play))
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"))
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb)], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=600, check=False)
    assert out.exists(), p.stdout + p.stderr
    return {r["item"]["name"]: r for r in json.loads(out.read_text())}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pve_cluster")
    now = int(time.time())
    run_pbs, run_local, run_nolog = upid("pve3", now - 60), upid("pve2", now - 30, id_="101"), upid("pve1", now - 5)
    job_line = "INFO: starting new backup job: vzdump --all 1 --storage %s --mode snapshot --node %s"

    def tasks(*us):
        return [{"upid": u, "node": u.split(":")[1], "pid": 4242, "starttime": int(u.split(":")[4], 16),
                 "type": "vzdump", "id": u.split(":")[6], "user": "root@pam", "saved": "0"} for u in us]

    backup_jobs = [{"id": "backup-nostorage", "type": "vzdump", "schedule": "21:00", "enabled": 1, "all": 1},
                   {"id": "backup-pve3-only", "type": "vzdump", "schedule": "22:00", "node": "pve3", "vmid": "101"},
                   {"id": "backup-local", "type": "vzdump", "schedule": "23:00", "storage": "local"}]
    cases = {
        "single": {"state": make_state(tmp, "single", cluster=False), "node": "pve",
                   "args": {"nodes": [], "group": "", "asked_host": "pve"}},
        "other_node": {"state": make_state(tmp, "other", vm_on="pve2")},
        "check_mode": {"state": make_state(tmp, "check", vm_on="pve2"), "check": True},
        "locked": {"state": make_state(tmp, "locked", lock="migrate")},
        "no_quorum": {"state": make_state(tmp, "noquorum", quorum=False)},
        "not_in_inventory": {"state": make_state(tmp, "notinv", vm_on="pve3"), "args": {"nodes": NODES[:2]}},
        "wrong_mapping": {"state": make_state(tmp, "mapping"),
                          "args": {"nodes": [{"host": "pve1", "node": "pve2"}, {"host": "pve2", "node": "pve1"}]}},
        "not_found": {"state": make_state(tmp, "notfound"), "args": {"vmid": 150}},
        "container": {"state": make_state(tmp, "container"), "args": {"vmid": 101}},
        "wrong_name": {"state": make_state(tmp, "name"), "args": {"name": "pbs-old"}},
        "ha": {"state": make_state(tmp, "ha", ha="started")},
        "ha_stopped": {"state": make_state(tmp, "hastopped", ha="stopped")},
        "moved": {"state": make_state(tmp, "moved", vm_on="pve2"), "args": {"previous_node": "pve1"}},
        "reboot_not_running": {"state": make_state(tmp, "reboot"), "args": {"phase": "reboot"}},
        "verify_locked": {"state": make_state(tmp, "verify", lock="backup"), "args": {"phase": "verify"}},
        "vzdump_to_us": {"state": make_state(tmp, "vz1", tasks=tasks(run_pbs),
                                             logs={run_pbs: [job_line % ("pbs-lab", "pve3")]})},
        "vzdump_elsewhere": {"state": make_state(tmp, "vz2", tasks=tasks(run_local),
                                                 logs={run_local: ["INFO: starting new backup job: vzdump 101 "
                                                                   "--mode snapshot --node pve2"]},
                                                 defaults={"pve2": {"storage": "local", "dumpdir": "/var/lib/vz/dump"}})},
        "vzdump_defaults_to_us": {"state": make_state(tmp, "vz3", tasks=tasks(run_local),
                                                      logs={run_local: ["INFO: starting new backup job: vzdump 101 "
                                                                        "--mode snapshot --node pve2"]},
                                                      defaults={"pve2": {"storage": "pbs-lab"}})},
        "vzdump_unknown": {"state": make_state(tmp, "vz4", tasks=tasks(run_nolog))},
        "vzdump_verify": {"state": make_state(tmp, "vz5", tasks=tasks(run_nolog)), "args": {"phase": "verify"}},
        "jobs": {"state": make_state(tmp, "jobs", backup=backup_jobs, defaults={"pve2": {"storage": "pbs-lab"}}),
                 "args": {"backup_jobs": True}},
        "jobs_unreadable": {"state": make_state(tmp, "jobsfail", fail="cluster-backup.json"), "args": {"backup_jobs": True}},
        "pvesh_missing": {"state": make_state(tmp, "nopvesh"), "args": {"pvesh": "/nonexistent/pvesh"}},
        "bad_param": {"state": make_state(tmp, "badparam"), "args": {"colour": "blue"}},
    }
    return run_cases(tmp, cases)


def test_module_is_built():
    assert (MODULES / "pve_cluster").exists()


def test_single_node_needs_no_mapping(results):
    r = results["single"]
    assert r["failed"] is False, r["msg"]
    assert r["single_node"] is True and r["cluster"]["clustered"] is False
    assert r["host"] == "pve" and r["node"] == r["local_node"]
    assert r["changed"] is False
    assert r["pvesh_calls"][:2] == ["get /cluster/status --output-format json",
                                    "get /cluster/resources --type vm --output-format json"]


def test_the_vm_on_another_node_names_that_nodes_host(results):
    r = results["other_node"]
    assert r["failed"] is False, r["msg"]
    assert (r["local_node"], r["node"], r["host"]) == ("pve1", "pve2", "pve2")
    assert r["vm"]["pool"] == "infra" and r["vm"]["hastate"] is None
    assert r["cluster"] == {**r["cluster"], "clustered": True, "quorate": True, "name": "labcluster"}
    c = results["check_mode"]
    assert c["failed"] is False and c["host"] == "pve2" and c["changed"] is False


@pytest.mark.parametrize("case,reason,words", [
    ("locked", "locked", ["is locked ('migrate'): a migration is in progress", "Nothing was changed."]),
    ("no_quorum", "no_quorum", ["'labcluster' is not quorate", "1 of 3 node(s) online: pve1", "pvecm status"]),
    ("not_in_inventory", "not_in_inventory", ["runs on node 'pve3', which is not in the inventory group 'pve_cluster'",
                                              "pbs_patch_pve_node: pve3"]),
    ("wrong_mapping", "mapping", ["mapped to PVE node 'pve2', but it answered as node 'pve1'"]),
    ("not_found", "not_found", ["VM 150 does not exist anywhere in cluster 'labcluster'"]),
    ("container", "container", ["VMID 101 on node 'pve3' is a lxc guest, not a QEMU VM"]),
    ("wrong_name", "wrong_name", ["is named 'pbs', not 'pbs-old': wrong VMID?"]),
    ("ha_stopped", "ha_state", ["HA state is 'stopped', not 'started'"]),
    ("reboot_not_running", "not_running", ["is 'stopped', not running", "PBS was NOT rebooted"]),
])
def test_refusals_say_what_is_wrong_and_what_to_do(results, case, reason, words):
    r = results[case]
    assert r["failed"] is True
    assert r["answered"] is True, r["msg"]
    assert r["placement"]["reason"] == reason
    for w in words:
        assert w in r["msg"], r["msg"]


def test_ha_state_and_moves_are_reported(results):
    assert results["ha"]["failed"] is False and results["ha"]["ha_state"] == "started"
    assert results["ha"]["ha_managed"] is True
    m = results["moved"]
    assert m["failed"] is False and m["moved"] is True and m["node"] == "pve2"
    assert any("moved from node 'pve1' to node 'pve2'" in n for n in m["placement"]["notes"])
    v = results["verify_locked"]  # after the reboot: located and reported, never refused
    assert v["failed"] is False and v["vm"]["lock"] == "backup"


def test_running_vzdump_to_this_pbs_refuses(results):
    r = results["vzdump_to_us"]
    assert r["failed"] is True and r["answered"] is True
    assert "A backup to this PBS is running on Proxmox VE: vzdump task UPID:pve3:" in r["msg"]
    assert "writes to storage 'pbs-lab' (127.0.0.1:store1, command line), which is this PBS" in r["msg"]
    assert r["tasks"]["vzdump"][0]["blocks"] is True
    d = results["vzdump_defaults_to_us"]
    assert d["failed"] is True and "vzdump defaults of node pve2" in d["msg"]
    u = results["vzdump_unknown"]  # no log: PVE's "unable to open file" line, no job line: fail closed
    assert u["failed"] is True and "does not name the backup job yet" in u["msg"]
    assert results["vzdump_verify"]["failed"] is False  # not checked after the reboot


def test_running_vzdump_elsewhere_is_listed_not_refused(results):
    r = results["vzdump_elsewhere"]
    assert r["failed"] is False, r["msg"]
    f = r["tasks"]["vzdump"][0]
    assert f["blocks"] is False and f["storage"] == "local" and f["storage_source"] == "vzdump defaults of node pve2"
    assert "No running vzdump task writes to this PBS (1 running task(s) in the cluster, 1 vzdump)" in r["msg"]


def test_backup_jobs_without_storage_get_the_nodes_default(results):
    r = results["jobs"]
    assert r["failed"] is False, r["msg"]
    jobs = {j["id"]: j for j in r["backup_jobs"]}
    assert jobs["backup-nostorage"]["storage"] == "pbs-lab"
    assert jobs["backup-nostorage"]["storage_from"] == "storage from the vzdump defaults of node pve2"
    assert jobs["backup-pve3-only"]["storage"] == "local"  # pve3's defaults: PVE's 'local'
    assert jobs["backup-local"] == {"id": "backup-local", "type": "vzdump", "schedule": "23:00", "storage": "local"}
    assert {s["storage"] for s in r["storage"]} == {"local", "pbs-lab"}
    assert set(r["vzdump_defaults"]) == {"pve1", "pve2", "pve3"}
    f = results["jobs_unreadable"]
    assert f["failed"] is True and "Cannot read the Proxmox VE backup jobs" in f["msg"]
    assert "pbs_patch_pve_backup_jobs=false" in f["msg"]


def test_an_unreadable_node_is_not_an_answer(results):
    r = results["pvesh_missing"]
    assert r["failed"] is True and r["answered"] is False
    assert "cannot read the Proxmox VE cluster state on pve1" in r["msg"]


def test_unknown_parameters_are_rejected(results):
    r = results["bad_param"]
    assert r["failed"] is True and "colour" in r["msg"]
