"""The lab's Proxmox VE cluster stand-in (issue 12) against the running lab VM: node identities, qemu-server's
messages for a VM of another node, the call log, a live migration keeping the same QEMU, the deferred migration
trigger, locks, lost quorum, the HA redirect, and the SMBIOS UUID the guest sees. Each test leaves the lab
pristine (a single node) again."""
import json
import os

import pytest

from labhelpers import LAB, ROOT, C, run

pytestmark = pytest.mark.lab

NODES = LAB / "bin" / "nodes"
STATE = C.STATE


def qm(node, *args, check=False):
    return run([NODES / node / "qm", *args], check=check, timeout=180)


def pvesh(node, *args):
    r = run([NODES / node / "pvesh", "get", *args, "--output-format", "json"], timeout=60)
    return json.loads(r.stdout)


def qm_log():
    path = STATE / "pve" / "qm-calls.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def cluster(pristine):
    pristine.labctl("cluster", "on", "--vm-on", "pve2")
    yield pristine


def test_single_node_by_default_with_the_vms_smbios_uuid(pristine):
    status = json.loads(run([LAB / "bin" / "pvesh", "get", "/cluster/status", "--output-format", "json"]).stdout)
    assert [e["type"] for e in status] == ["node"] and status[0]["local"] == 1
    conf = run([LAB / "bin" / "qm", "config", "100"]).stdout
    uuid = next(l.split("uuid=")[1].split(",")[0] for l in conf.splitlines() if l.startswith("smbios1:"))
    assert pristine.ssh("cat /sys/class/dmi/id/product_uuid").stdout.strip() == uuid.lower()


def test_qm_on_the_wrong_node_refuses_with_qemu_servers_messages_and_is_logged(cluster):
    r = qm("pve1", "status", "100")
    assert r.returncode == 2
    assert r.stderr == "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist\n"
    r = qm("pve1", "reboot", "100")
    assert r.returncode == 2
    assert r.stderr.endswith("unable to find configuration file for VM 100 on node 'pve1'\n")
    assert qm("pve2", "status", "100").stdout == "status: running\n"
    log = qm_log()
    assert [(c["node"], c["argv"][0], c["rc"], c["vm_node"]) for c in log[-3:]] == [
        ("pve1", "status", 2, "pve2"), ("pve1", "reboot", 2, "pve2"), ("pve2", "status", 0, "pve2")]
    status = pvesh("pve3", "/cluster/status")
    assert status[0] == {"type": "cluster", "id": "cluster", "name": "labcluster", "nodes": 3, "quorate": 1,
                         "version": 3}
    assert [n["name"] for n in status[1:] if n["local"]] == ["pve3"]
    res = pvesh("pve3", "/cluster/resources", "--type", "vm")
    assert {(g["type"], g["vmid"], g["node"]) for g in res} == {("qemu", 100, "pve2"), ("lxc", 101, "pve3")}
    assert {e["type"] for e in pvesh("pve1", "/cluster/resources")} == {"pool", "qemu", "lxc", "node", "storage"}


def test_migrate_keeps_the_same_qemu_and_a_deferred_one_waits_for_a_qm_call(cluster):
    pid = C.qemu_pid()
    cluster.labctl("migrate", "pve3")
    assert C.qemu_pid() == pid  # a live migration: the same QEMU keeps running
    assert qm("pve3", "status", "100").stdout == "status: running\n"
    assert qm("pve2", "status", "100").returncode == 2
    cluster.labctl("migrate", "pve1", "--deferred")
    assert {g["node"] for g in pvesh("pve1", "/cluster/resources", "--type", "vm") if g["vmid"] == 100} == {"pve3"}
    qm("pve3", "config", "100", check=True)  # a qm call: the next read of the cluster moves it
    assert {g["node"] for g in pvesh("pve1", "/cluster/resources", "--type", "vm") if g["vmid"] == 100} == {"pve1"}
    events = [json.loads(l) for l in (STATE / "pve" / "events.jsonl").read_text().splitlines()]
    assert [(e["source"], e["target"]) for e in events if e["event"] == "migrate"] == [("pve2", "pve3"), ("pve3", "pve1")]


def test_locks_quorum_and_the_ha_redirect(cluster):
    cluster.labctl("fault", "migrate-lock", "on")
    assert [g["lock"] for g in pvesh("pve1", "/cluster/resources", "--type", "vm") if g["vmid"] == 100] == ["migrate"]
    r = qm("pve2", "reboot", "100")
    assert r.returncode == 255 and r.stderr == "VM is locked (migrate)\n"
    cluster.labctl("fault", "migrate-lock", "off")
    cluster.labctl("fault", "no-quorum", "on")
    status = pvesh("pve1", "/cluster/status")
    assert status[0]["quorate"] == 0
    assert [n["name"] for n in status[1:] if n["online"]] == ["pve1"]
    cluster.labctl("fault", "no-quorum", "off")
    cluster.labctl("fault", "ha-managed", "on")
    assert [g["hastate"] for g in pvesh("pve2", "/cluster/resources", "--type", "vm") if g["vmid"] == 100] == ["started"]
    r = qm("pve2", "shutdown", "100", "--timeout", "120")
    assert r.returncode == 0 and r.stdout == "Requesting HA stop for VM 100\n"
    assert [g["hastate"] for g in pvesh("pve2", "/cluster/resources", "--type", "vm") if g["vmid"] == 100] == ["stopped"]
    assert qm("pve2", "status", "100").stdout == "status: stopped\n"


def test_a_running_vzdump_task_and_its_log(cluster):
    cluster.labctl("fault", "vzdump-running", "on")
    tasks = pvesh("pve1", "/cluster/tasks")
    assert len(tasks) == 1 and tasks[0]["type"] == "vzdump" and "endtime" not in tasks[0]
    log = pvesh("pve1", f"/nodes/pve3/tasks/{tasks[0]['upid']}/log")
    assert log[0] == {"n": 1, "t": "INFO: starting new backup job: vzdump --all 1 --storage pbs-lab --mode snapshot "
                                   "--node pve3"}
    missing = pvesh("pve1", "/nodes/pve3/tasks/UPID:pve3:00000001:00000001:00000001:vzdump::root@pam:/log")
    assert missing == [{"n": 1, "t": "unable to open file - No such file or directory"}]
    assert pvesh("pve2", "/nodes/pve2/vzdump/defaults")["storage"] == "local"


def test_the_check_right_before_qm_reboot_refuses_a_vzdump_to_this_pbs(cluster, tmp_path):
    """pve_cluster in the reboot phase (the role's last check before qm reboot), called as Ansible calls a binary
    module (argv[1] = the args file), with the VM running on pve2 and a vzdump job writing to this PBS."""
    def call(**extra):
        args = tmp_path / "args.json"
        args.write_text(json.dumps({"vmid": 100, "name": "pbs", "phase": "reboot", "asked_host": "pve2",
                                    "nodes": [{"host": h, "node": h} for h in ("pve1", "pve2", "pve3")],
                                    "pvesh": str(NODES / "pve2" / "pvesh"), **extra}))
        r = run([ROOT / "plugins" / "modules" / "pve_cluster", args], check=False, timeout=120,
                env=dict(os.environ, PBS_PATCH_LAB_STATE=str(STATE)))
        return json.loads(r.stdout)
    ok = call()
    assert ok["failed"] is False and ok["vm"]["status"] == "running" and ok["host"] == "pve2", ok["msg"]
    cluster.labctl("fault", "vzdump-running", "on")
    r = call()
    assert r["failed"] is True and r["refused"] is True
    assert "A backup to this PBS is running on Proxmox VE: vzdump task UPID:pve3:" in r["msg"]
    assert "Rebooting PBS now would break it" in r["msg"] and "PBS was NOT rebooted" in r["msg"]
