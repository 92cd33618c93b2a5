"""pbs_quiesce on the real lab guest through the real ansible-playbook: the PBS stand-in's maintenance-mode
semantics (new tasks refused with PBS's messages, reads allowed in read-only), active operations held by running
tasks, an admin's mode left exactly as it was, a timeout that restores, and the restore itself.

Uses the lab fixtures of tests/conftest.py (one VM per session; the guest is reset to its pristine snapshot after
each test). Run: .venv/bin/pytest tests/integration/test_quiesce_on_lab.py"""
import json
import sys
import tempfile
from pathlib import Path

import pytest

_LAB_TESTS = Path(__file__).resolve().parents[1] / "lab"
sys.path.insert(0, str(_LAB_TESTS))
from labhelpers import LAB, ROOT  # noqa: E402

from ansible_runner import run_module_play  # noqa: E402

MODULES = ROOT / "plugins" / "modules"
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not (MODULES / "pbs_quiesce").exists(), reason="pbs_quiesce not built")]
ADMIN = "offline,message=disk swap by admin"


def quiesce(args, check=False):
    with tempfile.TemporaryDirectory() as tmp:
        return run_module_play(Path(tmp), "pbs_quiesce", args, check=check, host="pbs",
                               inventory=LAB / "inventory.yml", timeout=900).result


def stores(lab):
    return {d["name"]: d for d in json.loads(lab.ssh("proxmox-backup-manager datastore list --output-format json").stdout)}


def test_quiesce_refuses_new_work_with_pbs_messages_and_leaves_the_admins_mode(pristine):
    lab = pristine
    lab.labctl("fault", "admin-maintenance", "on")
    cfg_before = lab.ssh("cat /etc/proxmox-backup/datastore.cfg").stdout
    r = quiesce({"message": "pbs_patch run T: upgrade and reboot", "timeout": 30}, check=True)
    assert not r.get("failed") and r["changed"], r
    assert lab.ssh("cat /etc/proxmox-backup/datastore.cfg").stdout == cfg_before, "check mode changed nothing"

    r = quiesce({"message": "pbs_patch run T: upgrade and reboot", "timeout": 30})
    assert not r.get("failed"), r
    by = {d["name"]: d for d in r["datastores"]}
    assert by["store1"]["set"] == "read-only,message=pbs_patch run T: upgrade and reboot", r
    assert by["store2"] == {"name": "store2", "before": ADMIN, "set": None, "restored": False,
                            "left_alone": True, "error": None}, r
    # a new backup is refused with PBS's own message; a restore (a read) may still start in read-only
    refused = lab.ssh("pbs-lab-task add --running --type backup --id store1:vm/200", check=False)
    assert refused.returncode == 255
    assert refused.stderr.strip() == ("Error: datastore 'store1' is in read-only maintenance mode: "
                                      "pbs_patch run T: upgrade and reboot")
    assert lab.ssh("pbs-lab-task add --running --type reader --id store1:vm/200/6B0EB181 --duration 1",
                   check=False).returncode == 0
    # and the admin's offline datastore refuses reads too
    refused = lab.ssh("pbs-lab-task add --running --type reader --id store2:vm/1/6B0EB181", check=False)
    assert refused.stderr.strip() == "Error: datastore 'store2' is in offline maintenance mode: disk swap by admin"

    r = quiesce({"state": "restored", "datastores": r["datastores"]})
    assert not r.get("failed") and r["changed"], r
    now = stores(lab)
    assert "maintenance-mode" not in now["store1"]
    assert now["store2"]["maintenance-mode"] == ADMIN
    assert [l for l in lab.ssh("cat /etc/proxmox-backup/datastore.cfg").stdout.splitlines() if "maintenance" in l] == \
           [l for l in cfg_before.splitlines() if "maintenance" in l]
    r = quiesce({"state": "restored", "datastores": r["datastores"]})
    assert not r.get("failed") and not r["changed"], r


def test_quiesce_waits_for_a_running_backup_and_its_write_operation(pristine):
    lab = pristine
    upid = lab.ssh("pbs-lab-task add --running --type backup --id store1:vm/101 --ends-after-maintenance 5").stdout.strip()
    ops = json.loads(lab.ssh("cat /run/proxmox-backup/active-operations/store1").stdout)
    assert [e["active_operations"] for e in ops] == [{"read": 0, "write": 1}]
    r = quiesce({"message": "pbs_patch run W", "timeout": 300})
    assert not r.get("failed"), r
    assert any(upid in w for w in r["waited_for"]), r
    assert r["active_operations"]["store1"] == {"read": 0, "write": 0}, r
    finished = lab.ssh("pbs-lab-task list").stdout
    assert f"{upid} " in finished and finished.split(f"{upid} ")[1].split("\n")[0].endswith(" OK"), finished


def test_quiesce_timeout_restores_and_names_the_task(pristine):
    lab = pristine
    upid = lab.ssh("pbs-lab-task add --running --type backup --id store1:vm/102 --ends-after-maintenance 0").stdout.strip()
    r = quiesce({"message": "pbs_patch run X", "timeout": 6})
    assert r.get("failed"), r
    assert "did not quiesce within 6 s" in r["msg"] and upid in r["msg"], r
    assert "Maintenance mode restored on store1" in r["msg"], r
    assert "maintenance-mode" not in stores(lab)["store1"]
    r = quiesce({"state": "drained", "timeout": 2})
    assert r.get("failed") and "backup store1:vm/102" in r["msg"], r
    # fail closed: with the API down and the task file unreadable nothing is "quiet"
    lab.ssh("pbs-lab-task clear; systemctl stop proxmox-backup.service; mv /var/log/proxmox-backup/tasks/active /root/")
    r = quiesce({"state": "drained", "timeout": 0})
    assert r.get("failed") and "cannot tell whether PBS tasks are running" in r["msg"], r
