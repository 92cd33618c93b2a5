"""The whole patch cycle: the real playbooks/patch_pbs.yml against the lab VM (issue 5).

Scenarios, each from the lab's pristine snapshot (`labctl reset`):
  * a real run: packages at their new versions, the locally modified conffile kept, boot id changed, PBS services
    active and enabled, the notification received (generic webhook, ntfy and Gotify formats) with every field;
    then a second run: nothing to upgrade, and it still reboots and verifies;
  * --check: dpkg state and boot id unchanged, the would-be upgrades listed, nothing sent;
  * a wrong VM name (wrong VMID) is refused before anything changes.
Fast checks without the VM: a wrongly typed variable fails before any task, and the installed collection works.
The VM is the session lab of tests/conftest.py (one VM at a time on this machine).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
RECEIVER = REPO / "tests" / "support" / "webhook_receiver.py"
PLAYBOOK = REPO / "playbooks" / "patch_pbs.yml"
INVENTORY = REPO / "lab" / "inventory.yml"


NEW_VERSIONS = {"proxmox-backup-server": "3.2.5-1", "pbs-lab-conffile": "1.1-1", "pbs-lab-kernel": "1.1-1"}
REPORT_FIELDS = {"status", "host", "kernel", "root_free_gb", "reboot_required", "services", "recent_tasks",
                 "health_summary", "packages_changed", "timings", "boot_id_before", "boot_id_after", "guest_agent"}
TIMING_FIELDS = {"gate_s", "upgrade_s", "downtime_s", "shutdown_s", "boot_to_ssh_s", "login_s", "verify_s", "total_s"}
SECRET = "s3cr3t-token-for-tests"


def _env():
    return dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="false")


def playbook(*args, timeout=1200, inventory=INVENTORY, cwd=REPO, target=PLAYBOOK):
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(target), *map(str, args)]
    p = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)
    return p.returncode, p.stdout + p.stderr


class Receiver:
    """The local HTTP endpoint that records every notification POST."""

    def __init__(self, tmp: Path):
        self.out = tmp / "posts.jsonl"
        port_file = tmp / "receiver.port"
        self.proc = subprocess.Popen([sys.executable, str(RECEIVER), "--out", str(self.out), "--port-file",
                                      str(port_file)], stderr=subprocess.DEVNULL)
        for _attempt in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        self.url = "http://127.0.0.1:%s" % port_file.read_text().strip()

    def posts(self):
        return [json.loads(x) for x in self.out.read_text().splitlines() if x.strip()] if self.out.exists() else []

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def receiver(tmp_path):
    r = Receiver(tmp_path)
    yield r
    r.stop()


def notify_args(receiver, report):
    return ["-e", f"pbs_patch_report_path={report}",
            "-e", json.dumps({"pbs_patch_notify_webhook_url": receiver.url + "/webhook",
                              "pbs_patch_notify_webhook_headers": {"Authorization": "Bearer " + SECRET},
                              "pbs_patch_notify_ntfy_url": receiver.url + "/ntfy",
                              "pbs_patch_notify_ntfy_topic": "pbs-lab",
                              "pbs_patch_notify_ntfy_token": SECRET,
                              "pbs_patch_notify_gotify_url": receiver.url + "/gotify",
                              "pbs_patch_notify_gotify_token": SECRET})]


def dpkg_state(lab):
    return lab.ssh("dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' | sort").stdout


def versions(lab):
    out = lab.ssh("dpkg-query -W -f '${Package} ${Version}\\n' " + " ".join(NEW_VERSIONS)).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


# --- without the VM -------------------------------------------------------------------------------------
def test_wrong_variable_type_fails_before_any_task(tmp_path):
    rc, out = playbook("-e", "pbs_patch_vmid=not-a-number")
    assert rc != 0, out
    assert "Validating arguments against arg spec" in out and "pbs_patch_vmid" in out, out
    assert "Preflight |" not in out, "a task ran after the argument spec failed:\n" + out


def test_installed_collection_resolves_role_and_modules(tmp_path):
    """ansible-galaxy build + install, then the playbook by its FQCN from outside the checkout."""
    built = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path",
                            str(tmp_path), str(REPO)], env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = next(tmp_path.glob("cfolino-pbs-0.1.0.tar.gz"))
    listing = subprocess.run(["tar", "tzf", str(tarball)], capture_output=True, text=True, check=False).stdout.split()
    for member in ("roles/pbs_patch/tasks/main.yml", "playbooks/patch_pbs.yml", "plugins/modules/pbs_gate",
                   "meta/runtime.yml"):
        assert member in listing, member
    assert not [m for m in listing if m.startswith(("lab/", "build/", ".venv/", "tests/unit", "tests/integration"))]
    # --force: the checkout's build/collections link (or an exported collections path) already holds cfolino.pbs 0.1.0
    inst = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--force", "-p",
                           str(tmp_path / "col"), str(tarball)], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=300, check=False)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    env = dict(_env(), ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "col"))
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), "cfolino.pbs.patch_pbs",
                        "--syntax-check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert str(tmp_path / "col") in p.stdout, p.stdout  # the installed copy, not the checkout


# --- on the lab VM --------------------------------------------------------------------------------------
@pytest.mark.lab
def test_patch_cycle_then_second_run(lab, receiver, tmp_path):
    lab.reset()
    before = versions(lab)
    assert before != NEW_VERSIONS, "the pristine guest should have upgrades pending: %s" % before
    boot0 = lab.boot_id()

    report = tmp_path / "report.json"
    rc, out = playbook(*notify_args(receiver, report))
    assert rc == 0, out[-8000:]
    assert SECRET not in out, "a secret was shown in the output"

    # the guest: new versions, local conffile kept, rebooted, services active and enabled
    assert versions(lab) == NEW_VERSIONS
    conf = lab.ssh("cat /etc/pbs-lab/lab.conf").stdout
    assert "setting = local" in conf and "package default 1.1-1" not in conf, conf
    assert lab.ssh("test -e /etc/pbs-lab/lab.conf.dpkg-dist && echo yes", check=False).stdout.strip() == "yes"
    boot1 = lab.boot_id()
    assert boot1 != boot0
    for unit in ("proxmox-backup", "proxmox-backup-proxy"):
        assert lab.ssh(f"systemctl is-active {unit}").stdout.strip() == "active"
        assert lab.ssh(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"

    # the report file and the three notification formats
    r = json.loads(report.read_text())
    assert r["status"] == "patched"
    assert REPORT_FIELDS <= set(r), REPORT_FIELDS - set(r)
    assert TIMING_FIELDS <= set(r["timings"]) and all(r["timings"][k] is not None for k in TIMING_FIELDS)
    assert r["boot_id_before"] == boot0 and r["boot_id_after"] == boot1
    assert {p["name"] for p in r["packages_changed"]} >= set(NEW_VERSIONS)
    assert r["reboot_required"] is True  # pbs-lab-kernel's postinst asks for it
    assert r["health_summary"]["healthy"] is True
    assert isinstance(r["recent_tasks"], list)
    assert SECRET not in report.read_text()

    posts = {p["path"]: p for p in receiver.posts()}
    assert set(posts) == {"/webhook", "/ntfy", "/gotify/message"}, list(posts)
    hook = posts["/webhook"]
    assert hook["headers"].get("Authorization") == "Bearer " + SECRET
    body = hook["body"]
    assert REPORT_FIELDS <= set(body), REPORT_FIELDS - set(body)
    assert body["status"] == "patched" and body["kernel"] and body["root_free_gb"] is not None
    assert {p["name"] for p in body["packages_changed"]} >= set(NEW_VERSIONS)
    assert {"gate_s", "upgrade_s", "downtime_s"} <= set(body["timings"])
    ntfy = posts["/ntfy"]
    assert ntfy["headers"].get("Authorization") == "Bearer " + SECRET
    assert ntfy["body"]["topic"] == "pbs-lab" and "patched" in ntfy["body"]["title"]
    for word in ("Kernel", "Root free space", "Reboot-required", "Services", "Packages changed", "Recent PBS tasks",
                 "Timings"):
        assert word in ntfy["body"]["message"], (word, ntfy["body"]["message"])
    gotify = posts["/gotify/message"]
    assert gotify["headers"].get("X-Gotify-Key") == SECRET
    assert gotify["body"]["title"] and gotify["body"]["message"] == ntfy["body"]["message"]

    # second run: nothing to upgrade, still reboots and verifies
    # (its webhook answers 500: a failed notification is a warning, not a failed patch)
    report2 = tmp_path / "report2.json"
    rc, out = playbook("-e", f"pbs_patch_report_path={report2}",
                       "-e", f"pbs_patch_notify_webhook_url={receiver.url}/fail/webhook")
    assert rc == 0, out[-8000:]
    assert "WARNING: the webhook notification was not delivered (HTTP 500" in out, out[-4000:]
    r2 = json.loads(report2.read_text())
    assert r2["status"] == "patched" and r2["packages_changed"] == []
    assert re.search(r"Upgrade \| Run the bounded dist-upgrade\] \*+\nok: \[pbs\]", out), "pbs_upgrade reported a change"
    boot2 = lab.boot_id()
    assert boot2 != boot1 and r2["boot_id_after"] == boot2
    assert versions(lab) == NEW_VERSIONS


@pytest.mark.lab
def test_check_mode_changes_nothing_and_lists_upgrades(lab, receiver, tmp_path):
    lab.reset()
    lab.labctl("fault", "agent-unconfigured", "on")  # the guest agent's absence is reported, never fatal
    state0, boot0 = dpkg_state(lab), lab.boot_id()
    report = tmp_path / "check.json"
    rc, out = playbook("--check", *notify_args(receiver, report))
    assert rc == 0, out[-8000:]
    assert dpkg_state(lab) == state0, "check mode changed the dpkg state"
    assert lab.boot_id() == boot0, "check mode rebooted the guest"
    assert "Check mode: would change" in out and "proxmox-backup-server" in out, out[-6000:]
    assert "would run" in out and "reboot 100" in out
    r = json.loads(report.read_text())
    assert r["status"] == "check_mode" and r["rebooted"] is False
    assert {p["name"] for p in r["packages_would_change"]} >= set(NEW_VERSIONS)
    assert r["guest_agent"]["available"] is False and "No QEMU guest agent configured" in r["guest_agent"]["error"]
    assert "Guest agent: not available" in out
    assert receiver.posts() == [], "check mode sent a notification"


@pytest.mark.lab
def test_wrong_vm_name_is_refused_before_any_change(lab, receiver, tmp_path):
    state0, boot0 = dpkg_state(lab), lab.boot_id()
    rc, out = playbook("-e", "pbs_patch_vm_name=not-the-pbs", *notify_args(receiver, tmp_path / "r.json"))
    assert rc != 0
    assert "is named 'pbs', not 'not-the-pbs'" in out, out[-4000:]
    assert "Run the PBS hard gates" not in out and "Ask Proxmox VE to reboot" not in out
    assert dpkg_state(lab) == state0 and lab.boot_id() == boot0
    assert receiver.posts() == [], "a refused run sent a notification"


@pytest.mark.lab
def test_vm_not_coming_back_fails_with_what_was_last_seen(lab, receiver, tmp_path):
    lab.reset()
    lab.labctl("fault", "no-return", "on")
    try:
        rc, out = playbook("-e", "pbs_patch_ssh_up_timeout=45", "-e", "pbs_patch_notify_on_failure=true",
                           *notify_args(receiver, tmp_path / "r.json"))
        assert rc != 0
        assert "PBS did not come back" in out and "Last seen: SSH stopped at" in out, out[-5000:]
        assert "status: stopped" in out, out[-5000:]
        assert "FAILED in step 'reboot'" in out
        posts = receiver.posts()
        assert posts and not any("patched" in json.dumps(p["body"]) for p in posts), posts
        assert all(p["body"].get("status") in (None, "failed") for p in posts if p["path"] == "/webhook")
        assert json.loads((tmp_path / "r.json").read_text())["status"] == "failed"
    finally:
        lab.reset()
