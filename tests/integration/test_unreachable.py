"""A node that becomes UNREACHABLE after changes began still fails the step through the role's rescue: the failure
alert is sent, naming the step, and the lease is settled (here it cannot be: its host is the unreachable node,
and the run says so). ansible-core skips a block's rescue for an UNREACHABLE host; the role's
`ignore_unreachable` + explicit checks are what make this work (issue 11).

No lab VM: the role starts at its reboot step (--skip-tags), the PVE node is an SSH host on a closed port, and no task
before `qm reboot` touches the PBS host (a local connection here)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from ansible_runner import CHECKOUT_COLLECTIONS, REPO, VENV_BIN, collections_path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again once the socket is


def test_unreachable_pve_node_at_reboot_fails_the_step_with_alert(tmp_path):
    out = tmp_path / "notifications.jsonl"
    port_file = tmp_path / "receiver.port"
    receiver = subprocess.Popen([sys.executable, str(REPO / "tests" / "support" / "webhook_receiver.py"),
                                 "--out", str(out), "--port-file", str(port_file)])
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        port = int(port_file.read_text())
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(json.dumps({"all": {"hosts": {
            "pbs": {"ansible_connection": "local", "ansible_python_interpreter": str(VENV_BIN / "python")},
            "pve_gone": {"ansible_host": "127.0.0.1", "ansible_port": closed_port(), "ansible_user": "root",
                         "ansible_ssh_common_args": "-o ConnectTimeout=5 -o StrictHostKeyChecking=no "
                                                    "-o UserKnownHostsFile=/dev/null -o BatchMode=yes"},
        }}}))
        playbook = tmp_path / "play.yml"
        playbook.write_text(json.dumps([{"name": "Patch", "hosts": "pbs", "gather_facts": False,
                                         "roles": [{"role": "cfolino.pbs.pbs_patch"}]}]))
        # A PBS with nothing running (the final check before qm reboot reads its tasks and datastores).
        pbm = tmp_path / "proxmox-backup-manager"
        pbm.write_text("#!/bin/sh\necho '[]'\n")
        pbm.chmod(0o755)
        extra = {
            "pbs_patch_pbm_path": str(pbm),
            "pbs_patch_vmid": 100, "pbs_patch_vm_name": "pbs", "pbs_patch_pve_host": "pve_gone",
            "pbs_patch_notify_on_failure": True, "pbs_patch_notify_webhook_url": f"http://127.0.0.1:{port}/webhook",
            # What the preflight would have recorded (the run starts at the reboot step here).
            "_pbs_patch_qm": "/usr/sbin/qm", "_pbs_patch_vmid": 100, "_pbs_patch_ssh_host": "127.0.0.1",
            "_pbs_patch_ssh_port": 22, "_pbs_patch_boot_id_before": "00000000-0000-0000-0000-000000000000",
            "_pbs_patch_lease_path": "/var/lib/pbs-patch/maintenance.lease", "maintenance_lease_held": True,
            "maintenance_lease_token": "t0k3n",
        }
        env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_COLLECTIONS_PATH=collections_path(CHECKOUT_COLLECTIONS), ANSIBLE_LOCALHOST_WARNING="false")
        proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook),
                               "--skip-tags", "pbs_patch_preflight,pbs_patch_upgrade,pbs_patch_quiesce", "-e", json.dumps(extra)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    finally:
        receiver.terminate()
        receiver.wait(timeout=30)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "UNREACHABLE" not in output.split("PLAY RECAP")[-1].split("pbs ")[0]
    assert "unreachable=0" in output.split("PLAY RECAP")[-1], output[-3000:]  # the host reached the rescue
    assert "PBS patch run FAILED in step 'reboot'" in output, output[-3000:]
    # The last look at the cluster before qm reboot asks the node first: nobody answers, so no reboot is issued.
    assert "No Proxmox VE node could say where VM 100 is (pve_gone:" in output, output[-3000:]
    assert "The packages are upgraded, but PBS was NOT rebooted" in " ".join(output.split()), output[-3000:]
    assert "could not be" in output and "marked failed" in output  # the lease host is the unreachable node
    alerts = [json.loads(line)["body"] for line in out.read_text().splitlines()]
    assert [a["status"] for a in alerts] == ["failed"], alerts
    assert alerts[0]["step"] == "reboot"
