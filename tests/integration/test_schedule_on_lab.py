"""Scheduling constraints on the lab (issue 8): the real playbooks/patch_pbs.yml against the lab VM.

  * a PBS sync job due inside the maintenance window refuses the run (before the gates, nothing changed), and
    the lease is released; so does a PVE vzdump job to this PBS (lab/bin/pvesh) and a blackout;
  * a lease held by another run refuses it, naming the holder, and stays theirs;
  * a job due after the window and an expired lease: the run takes the lease over, patches, verifies and
    releases the lease;
  * a failure once changes began (the upgrade times out) keeps the lease, marked failed; the next run is refused
    until playbooks/clear_lease.yml clears it.
Job schedules are written in the guest's own config files (/etc/proxmox-backup/sync.cfg, read by the lab's
proxmox-backup-manager like the real CLI) in the guest's local time. The lease lives in the lab instance's state
dir (lab/inventory.yml); `labctl reset` clears it with the rest of the PVE side.
"""
from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from test_patch_cycle import INVENTORY, REPO, dpkg_state, playbook

pytestmark = pytest.mark.lab

STATE = __import__("pathlib").Path(os.environ["PBS_PATCH_LAB_STATE"])
LEASE = STATE / "maintenance.lease"


def guest_hhmm(lab, minutes: int) -> str:
    """The guest's local wall-clock time `minutes` from now, as HH:MM."""
    return lab.ssh(f"date -d '+{minutes} min' +%H:%M").stdout.strip()


def set_sync_jobs(lab, jobs: dict[str, str]):
    cfg = "".join(f"sync: {jid}\n\tstore store1\n\tremote offsite\n\tremote-store backup\n\tschedule {sched}\n\n"
                  for jid, sched in jobs.items())
    lab.ssh(f"printf '%s' '{cfg}' > /etc/proxmox-backup/sync.cfg")


def write_lease(**kw):
    now = dt.datetime.now(dt.timezone.utc)
    started = kw.pop("started", now)
    ttl = kw.pop("ttl", 3600)
    lease = {"owner": "pve_patch", "purpose": "patch pve1", "host": "pve1",
             "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "ttl_s": ttl,
             "expires_at": (started + dt.timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "state": "held", "token": "someone-elses-token", **kw}
    LEASE.parent.mkdir(parents=True, exist_ok=True)
    LEASE.write_text(json.dumps(lease))
    return lease


def test_a_sync_job_due_inside_the_window_refuses_before_any_change(lab):
    lab.reset()
    state0, boot0 = dpkg_state(lab), lab.boot_id()
    at = guest_hhmm(lab, 10)
    set_sync_jobs(lab, {"lab-offsite": at})
    rc, out = playbook("-e", "pbs_patch_window_minutes=60")
    assert rc != 0
    assert "sync job 'lab-offsite'" in out and f"(schedule '{at}')" in out, out[-5000:]
    assert "inside the 60-minute maintenance window" in out
    assert "FAILED in step 'preflight'" in out
    assert "Run the PBS hard gates" not in out and "Run the bounded dist-upgrade" not in out
    assert "Release the maintenance lease (refused before any change)" in out
    assert not LEASE.exists(), LEASE.read_text()
    assert dpkg_state(lab) == state0 and lab.boot_id() == boot0


def test_a_vzdump_job_to_this_pbs_or_a_blackout_refuses(lab):
    lab.reset()
    soon = guest_hhmm(lab, 15)
    (STATE / "pvesh").mkdir(parents=True, exist_ok=True)
    (STATE / "pvesh" / "cluster-backup.json").write_text(json.dumps([
        {"id": "backup-lab-all", "type": "vzdump", "schedule": soon, "storage": "pbs-lab", "enabled": 1, "all": 1,
         "mode": "snapshot", "notes-template": "{{guestname}}"},
        {"id": "backup-off", "type": "vzdump", "schedule": "*:0/5", "storage": "pbs-lab", "enabled": 0}]))
    rc, out = playbook("-e", "pbs_patch_window_minutes=30")
    assert rc != 0
    assert "vzdump job 'backup-lab-all'" in out and "storage pbs-lab (127.0.0.1:store1)" in out, out[-5000:]
    assert "vzdump job 'backup-off'" not in out  # disabled (enabled: 0), though due every 5 minutes
    assert not LEASE.exists()
    # A blackout over the next hour refuses too (no vzdump job this time).
    (STATE / "pvesh" / "cluster-backup.json").write_text("[]")
    rc, out = playbook("-e", json.dumps({"pbs_patch_window_minutes": 30, "pbs_patch_blackouts": "12:00-12:01;"
                                         + lab.ssh("date +%H:%M").stdout.strip() + "-"
                                         + guest_hhmm(lab, 60)}))
    assert rc != 0
    assert "blackout '" in out and "overlaps the maintenance window" in out, out[-5000:]
    assert not LEASE.exists()


def test_a_held_lease_refuses_naming_its_holder(lab):
    lab.reset()
    state0 = dpkg_state(lab)
    held = write_lease()
    rc, out = playbook()
    assert rc != 0
    assert "maintenance lease is held by owner 'pve_patch' (purpose: patch pve1)" in out, out[-5000:]
    assert f"expires {held['expires_at']}" in out
    assert "someone-elses-token" not in out
    assert json.loads(LEASE.read_text()) == held, "a refused run touched the other holder's lease"
    assert "Check the scheduling constraints" not in out and "Run the PBS hard gates" not in out
    assert dpkg_state(lab) == state0


def test_job_after_the_window_and_an_expired_lease_the_run_takes_over_patches_and_releases(lab):
    lab.reset()
    boot0 = lab.boot_id()
    after = guest_hhmm(lab, 60 + 20)
    set_sync_jobs(lab, {"lab-later": after})
    write_lease(started=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3), ttl=3600)
    rc, out = playbook("-e", "pbs_patch_window_minutes=60", timeout=1800)
    assert rc == 0, out[-8000:]
    assert "took over an expired maintenance lease" in out and "pve_patch" in out
    assert "the 60-minute maintenance window" in out and "is free" in out, out[-6000:]
    assert "Next job after the window: sync lab-later at" in out
    assert "Release the maintenance lease" in out
    assert not LEASE.exists(), "the lease was not released after a verified run"
    assert lab.boot_id() != boot0


def test_a_failure_once_changes_began_keeps_the_lease_marked_failed_until_cleared(lab):
    lab.reset()
    lab.labctl("fault", "hang-postinst", "on")
    try:
        rc, out = playbook("-e", "pbs_patch_upgrade_timeout=30", "-e", "pbs_patch_dpkg_configure_timeout=15",
                           timeout=1200)
        assert rc != 0
        assert "FAILED in step 'upgrade'" in out, out[-6000:]
        lease = json.loads(LEASE.read_text())
        assert lease["state"] == "failed" and lease["owner"] == "pbs_patch"
        assert lease["expires_at"] is None
        assert "step 'upgrade'" in lease["failure"]
        # Nothing proceeds: the next run is refused, naming the failure and how to clear it.
        rc, out = playbook()
        assert rc != 0
        assert "held by a FAILED run" in out and "playbooks/clear_lease.yml" in out, out[-5000:]
        assert "Run the PBS hard gates" not in out
        assert json.loads(LEASE.read_text())["state"] == "failed"
        # The operator's command.
        rc, out = playbook("-e", "maintenance_lease_host=pve", target=REPO / "playbooks" / "clear_lease.yml",
                           inventory=INVENTORY)
        assert "step 'upgrade'" in out  # what was cleared is shown
        assert rc == 0, out[-4000:]
        assert not LEASE.exists()
    finally:
        lab.reset()
