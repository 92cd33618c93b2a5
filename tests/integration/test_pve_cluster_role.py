"""The role's PVE side (roles/pbs_patch/tasks/pve_cluster.yml) through the real ansible-playbook, against the lab's
PVE stand-ins in a temporary state dir (no VM): any reachable node answers, the hosting node confirms before any
qm is pointed at it, and a wrong node mapping is refused before anything changes.
"""
from __future__ import annotations

import json
import os
import subprocess

from ansible_runner import REPO, VENV_BIN
from test_pve_cluster_playbook import make_state

BIN = REPO / "lab" / "bin" / "nodes"


def inventory(tmp_path, state, *, pve2_node="pve2"):
    inv = {"all": {"vars": {"pbs_patch_vmid": 100, "pbs_patch_vm_name": "pbs"}, "children": {
        "pbs_hosts": {"hosts": {"pbs": {"ansible_connection": "local",
                                        "ansible_python_interpreter": str(VENV_BIN / "python")}}},
        "pve_cluster": {"hosts": {
            # pve1 does not answer at all (nothing listens on port 1): the next node must.
            "pve1": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "root",
                     "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes", "pbs_patch_pve_node": "pve1"},
            "pve2": {"pbs_patch_pve_node": pve2_node, "ansible_connection": "local"},
            "pve3": {"pbs_patch_pve_node": "pve3", "ansible_connection": "local"}},
            "vars": {"ansible_python_interpreter": str(VENV_BIN / "python"),
                     "pbs_patch_qm_command": str(BIN) + "/{{ inventory_hostname }}/qm",
                     "pbs_patch_pvesh_command": str(BIN) + "/{{ inventory_hostname }}/pvesh"}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(inv))
    return path


def run(tmp_path, state, inv):
    out = tmp_path / "facts.json"
    play = [{"hosts": "pbs", "gather_facts": False,
             "vars": {"pbs_patch_pve_group": "pve_cluster", "pbs_patch_pve_host": "pve1", "_pbs_patch_vmid": 100},
             "tasks": [{"name": "PVE side", "block": [
                 {"name": "Locate", "ansible.builtin.include_role": {"name": "cfolino.pbs.pbs_patch",
                                                                     "tasks_from": "pve_cluster"},
                  "vars": {"_pbs_patch_pve_phase": "preflight"}}],
                 "rescue": [{"name": "Keep the failure", "ansible.builtin.set_fact": {
                     "failure": "{{ ansible_failed_result.msg }}"}}],
                 "always": [{"name": "Save", "delegate_to": "localhost", "ansible.builtin.copy": {
                     "dest": str(out), "mode": "0600", "content": "{{ {'qm_host': _pbs_patch_qm_host | default(none),"
                     " 'qm': _pbs_patch_qm | default(none), 'node': _pbs_patch_pve_node | default(none),"
                     " 'lease_path': _pbs_patch_lease_path | default(none),"
                     " 'lock_dir': _pbs_patch_lease_lock_dir | default(none),"
                     " 'failure': failure | default(none)} | to_json }}"}}]}]}]
    pb = tmp_path / "play.yml"
    pb.write_text(json.dumps(play))
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", ANSIBLE_NOCOLOR="1",
               PBS_PATCH_LAB_STATE=str(state))
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inv), str(pb)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600, check=False)
    assert out.exists(), p.stdout[-6000:] + p.stderr[-3000:]
    return json.loads(out.read_text()), p.stdout + p.stderr


def test_an_unreachable_node_is_skipped_and_qm_goes_to_the_hosting_node(tmp_path):
    state = make_state(tmp_path, "state", vm_on="pve3")
    facts, out = run(tmp_path, state, inventory(tmp_path, state))
    assert facts["failure"] is None, out[-6000:]
    assert facts["qm_host"] == "pve3" and facts["node"] == "pve3"
    assert facts["qm"] == str(BIN / "pve3" / "qm")
    # A cluster: the lease goes to the cluster filesystem (the role's defaults; the lab inventory points them at
    # its own cluster filesystem directory).
    assert facts["lease_path"] == "/etc/pve/priv/pbs-patch/maintenance.lease"
    assert facts["lock_dir"] == "/etc/pve/priv/lock"
    calls = [json.loads(line) for line in (state / "pve" / "pvesh-calls.jsonl").read_text().splitlines()]
    assert [c["node"] for c in calls][:1] == ["pve2"]  # pve1 never answered; pve2 located the VM
    assert "pve3" in {c["node"] for c in calls}       # ... and pve3 confirmed it before qm points there


def test_a_wrong_node_mapping_is_refused_before_anything_changes(tmp_path):
    state = make_state(tmp_path, "state", vm_on="pve3")
    facts, out = run(tmp_path, state, inventory(tmp_path, state, pve2_node="pve9"))
    assert facts["qm_host"] is None
    assert "Inventory host 'pve2' says it is PVE node 'pve9'" in facts["failure"], out[-4000:]
    assert "Nothing was changed." in facts["failure"]
    assert not (state / "pve" / "qm-calls.jsonl").exists()
