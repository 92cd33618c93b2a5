"""pbs_lease and the maintenance_lease role through the real ansible-playbook on localhost.

The "Proxmox VE node" is localhost under the inventory name `pve`; the lease lives in the test's tmp dir.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ansible_runner import MODULES, REPO, VENV_BIN, run_module_play


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_lease(path: Path, *, token="other-token", owner="pve_patch", purpose="patch pve1", state="held",
                started=None, ttl=3600, **extra):
    started = started or dt.datetime.now(dt.timezone.utc)
    lease = {"owner": owner, "purpose": purpose, "host": "pve1", "started_at": iso(started), "ttl_s": ttl,
             "expires_at": None if state == "failed" else iso(started + dt.timedelta(seconds=ttl)),
             "state": state, "token": token, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(lease))
    return lease


@pytest.fixture
def lease(tmp_path):
    return tmp_path / "var" / "lib" / "pbs-patch" / "maintenance.lease"


def lease_module(tmp_path, args, **kw):
    return run_module_play(tmp_path, "pbs_lease", args, **kw)


def test_acquire_writes_the_lease_and_a_second_acquire_with_the_token_changes_nothing(tmp_path, lease):
    r = lease_module(tmp_path, {"path": str(lease), "owner": "pbs_patch", "purpose": "patch pbs1", "host": "pbs1",
                                "ttl": 600}).result
    assert r["failed"] is False, r["msg"]
    assert r["changed"] is True
    assert r["action"] == "acquired"
    on_disk = json.loads(lease.read_text())
    assert on_disk["owner"] == "pbs_patch"
    assert on_disk["purpose"] == "patch pbs1"
    assert on_disk["host"] == "pbs1"
    assert on_disk["state"] == "held"
    assert on_disk["ttl_s"] == 600
    assert on_disk["token"] == r["token"]
    started = dt.datetime.fromisoformat(on_disk["started_at"].replace("Z", "+00:00"))
    expires = dt.datetime.fromisoformat(on_disk["expires_at"].replace("Z", "+00:00"))
    assert expires - started == dt.timedelta(seconds=600)
    assert abs((dt.datetime.now(dt.timezone.utc) - started).total_seconds()) < 60
    again = lease_module(tmp_path, {"path": str(lease), "owner": "pbs_patch", "token": r["token"]}).result
    assert again["failed"] is False
    assert again["changed"] is False
    assert again["action"] == "already_held"
    assert json.loads(lease.read_text()) == on_disk


def test_check_mode_reports_and_writes_nothing(tmp_path, lease):
    r = lease_module(tmp_path, {"path": str(lease), "owner": "pbs_patch"}, check=True).result
    assert r["failed"] is False, r["msg"]
    assert r["changed"] is True
    assert "check mode" in r["msg"]
    assert not lease.parent.exists()


def test_a_held_lease_refuses_naming_holder_purpose_and_expiry(tmp_path, lease):
    held = write_lease(lease)
    r = lease_module(tmp_path, {"path": str(lease), "owner": "pbs_patch"}).result
    assert r["failed"] is True
    assert r["changed"] is False
    assert "owner 'pve_patch'" in r["msg"]
    assert "purpose: patch pve1" in r["msg"]
    assert f"expires {held['expires_at']}" in r["msg"]
    assert r["holder"]["owner"] == "pve_patch"
    assert "token" not in r["holder"]
    assert "other-token" not in json.dumps(r)
    assert json.loads(lease.read_text()) == held


def test_an_expired_lease_is_taken_over_with_a_warning(tmp_path, lease):
    write_lease(lease, started=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3), ttl=3600)
    r = lease_module(tmp_path, {"path": str(lease), "owner": "pbs_patch", "purpose": "patch pbs1"}).result
    assert r["failed"] is False, r["msg"]
    assert r["changed"] is True
    assert r["action"] == "taken_over"
    assert any("took over an expired maintenance lease" in w and "pve_patch" in w for w in r["warnings"])
    assert json.loads(lease.read_text())["owner"] == "pbs_patch"


def test_release_needs_the_holders_token(tmp_path, lease):
    write_lease(lease, token="mine")
    r = lease_module(tmp_path, {"path": str(lease), "state": "released", "token": "not-mine"}).result
    assert r["failed"] is True
    assert "another token" in r["msg"]
    assert lease.exists()
    r = lease_module(tmp_path, {"path": str(lease), "state": "released"}).result
    assert r["failed"] is True
    assert "token" in r["msg"]
    r = lease_module(tmp_path, {"path": str(lease), "state": "released", "token": "mine"}, check=True).result
    assert r["changed"] is True and lease.exists()
    r = lease_module(tmp_path, {"path": str(lease), "state": "released", "token": "mine"}).result
    assert r["failed"] is False and r["changed"] is True
    assert not lease.exists()
    r = lease_module(tmp_path, {"path": str(lease), "state": "released", "token": "mine"}).result
    assert r["failed"] is False and r["changed"] is False
    assert r["action"] == "already_free"


def test_a_failed_lease_is_kept_refuses_everyone_and_only_a_forced_release_clears_it(tmp_path, lease):
    write_lease(lease, token="mine", owner="pbs_patch")
    r = lease_module(tmp_path, {"path": str(lease), "state": "failed", "owner": "pbs_patch", "token": "mine",
                                "reason": "pbs_health: proxmox-backup-proxy inactive"}).result
    assert r["failed"] is False, r["msg"]
    assert r["changed"] is True
    assert r["action"] == "marked_failed"
    on_disk = json.loads(lease.read_text())
    assert on_disk["state"] == "failed"
    assert on_disk["expires_at"] is None
    assert on_disk["failure"] == "pbs_health: proxmox-backup-proxy inactive"
    for token in ("mine", "other"):
        r = lease_module(tmp_path, {"path": str(lease), "owner": "pbs_patch", "token": token}).result
        assert r["failed"] is True
        assert "FAILED" in r["msg"] and "proxmox-backup-proxy inactive" in r["msg"]
        assert "playbooks/clear_lease.yml" in r["msg"] and f"rm -f {lease}" in r["msg"]
    r = lease_module(tmp_path, {"path": str(lease), "state": "released", "token": "mine"}).result
    assert r["failed"] is True
    assert lease.exists()
    r = lease_module(tmp_path, {"path": str(lease), "state": "released", "force": True}).result
    assert r["failed"] is False and r["changed"] is True
    assert any("cleared the maintenance lease" in w for w in r["warnings"])
    assert not lease.exists()


def test_a_corrupt_lease_file_refuses(tmp_path, lease):
    lease.parent.mkdir(parents=True)
    lease.write_text("{ half written")
    r = lease_module(tmp_path, {"path": str(lease), "owner": "pbs_patch"}).result
    assert r["failed"] is True
    assert "cannot be read" in r["msg"]


@pytest.mark.parametrize("args, words", [
    ({"state": "taken"}, ["value of state must be one of: acquired, released, failed"]),
    ({"ttl": 0, "owner": "x"}, ["ttl", ">= 1"]),
    ({}, ["owner is required"]),
])
def test_bad_parameters(tmp_path, lease, args, words):
    r = lease_module(tmp_path, dict(args, path=str(lease))).result
    assert r["failed"] is True
    for w in words:
        assert w in r["msg"], r["msg"]


def test_processes_racing_for_the_lease_exactly_one_wins(tmp_path, lease):
    """Twelve module processes at once (the binary as Ansible runs it: argv[1] = args file)."""
    procs = []
    for i in range(12):
        args = tmp_path / f"args-{i}.json"
        args.write_text(json.dumps({"path": str(lease), "owner": f"run-{i}"}))
        procs.append(subprocess.Popen([str(MODULES / "pbs_lease"), str(args)], stdout=subprocess.PIPE, text=True))
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    winners = [r for r in results if not r["failed"]]
    assert len(winners) == 1, results
    assert all("maintenance lease is held by owner" in r["msg"] for r in results if r["failed"])
    assert json.loads(lease.read_text())["token"] == winners[0]["token"]


# --- the reusable role --------------------------------------------------------------------------------------

def run_play(tmp_path: Path, tasks: list, *, extra: dict | None = None, check=False, name="play"):
    inventory = tmp_path / "inventory.ini"
    py = VENV_BIN / "python"
    inventory.write_text(f"[pve]\npve ansible_connection=local ansible_python_interpreter={py}\n"
                         f"[targets]\npbs1 ansible_connection=local ansible_python_interpreter={py}\n")
    out = tmp_path / f"{name}-facts.json"
    play = [{"name": "Maintenance with the lease", "hosts": "pbs1", "gather_facts": False,
             "tasks": tasks + [{"name": "Save", "ansible.builtin.copy": {
                 "content": "{{ {'token': maintenance_lease_token | default(None)} | to_json }}",
                 "dest": str(out), "mode": "0600"}, "check_mode": False, "delegate_to": "pve"}]}]
    playbook = tmp_path / f"{name}.yml"
    playbook.write_text(json.dumps(play))
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook),
           "-e", json.dumps(extra or {})]
    if check:
        cmd.append("--check")
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    facts = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, proc.stdout + proc.stderr, facts


def role_step(step: str) -> dict:
    role = {"name": "cfolino.pbs.maintenance_lease", "tasks_from": step}
    return {"name": f"Lease {step}", "ansible.builtin.include_role": role}


def test_role_acquire_then_release(tmp_path, lease):
    extra = {"maintenance_lease_path": str(lease), "maintenance_lease_owner": "omv_maintenance"}
    check_file = {"name": "Lease is held now", "ansible.builtin.assert": {"that": [
        f"(lookup('file', '{lease}') | from_json).owner == 'omv_maintenance'",
        f"(lookup('file', '{lease}') | from_json).host == 'pbs1'"]}}
    rc, out, facts = run_play(tmp_path, [role_step("acquire"), check_file, role_step("release")], extra=extra)
    assert rc == 0, out
    assert len(facts["token"]) == 32
    assert not lease.exists()


def test_role_refuses_while_another_run_holds_the_lease(tmp_path, lease):
    write_lease(lease, owner="pbs_patch", purpose="patch pbs1")
    never = {"name": "Never here", "ansible.builtin.fail": {"msg": "ran"}}
    rc, out, _err = run_play(tmp_path, [role_step("acquire"), never], extra={"maintenance_lease_path": str(lease)})
    assert rc != 0
    assert "owner 'pbs_patch'" in out and "purpose: patch pbs1" in out
    assert "Never here" not in out


def test_role_fail_keeps_the_lease_and_clear_lease_playbook_clears_it(tmp_path, lease):
    extra = {"maintenance_lease_path": str(lease), "maintenance_lease_owner": "pve_patch",
             "maintenance_lease_reason": "node did not come back"}
    tasks = [role_step("acquire"), {"name": "Change, then fail", "block": [
        {"name": "Break", "ansible.builtin.fail": {"msg": "boom"}}],
        "rescue": [role_step("fail")]}]
    rc, out, _err = run_play(tmp_path, tasks, extra=extra)
    assert rc == 0, out
    on_disk = json.loads(lease.read_text())
    assert on_disk["state"] == "failed" and on_disk["failure"] == "node did not come back"
    # clear_lease.yml in --check shows and keeps it; for real it clears it.
    inventory = tmp_path / "inventory.ini"
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1")
    base = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks" / "clear_lease.yml"),
            "-e", f"maintenance_lease_path={lease}"]
    proc = subprocess.run(base + ["--check"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lease.exists()
    proc = subprocess.run(base, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "node did not come back" in proc.stdout
    assert not lease.exists()


def test_two_playbooks_racing_one_runs_one_is_refused(tmp_path, lease):
    extra = {"maintenance_lease_path": str(lease), "maintenance_lease_ttl": 600}
    hold = {"name": "Work", "ansible.builtin.pause": {"seconds": 3}}
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda d: run_play(d, [role_step("acquire"), hold, role_step("release")],
                                                extra=dict(extra, maintenance_lease_owner=d.name)), dirs))
    rcs = sorted(run[0] for run in runs)
    assert rcs[0] == 0 and rcs[1] != 0, [run[1][-2000:] for run in runs]
    loser = next(run[1] for run in runs if run[0] != 0)
    assert "maintenance lease is held by owner" in loser
    assert not lease.exists()


# --- cluster-wide: the lease on a cluster filesystem, serialised with PVE's cfs lock ----------------------------

def test_cluster_lease_two_nodes_share_it_pve_maintenance_is_refused_while_pbs_patching_holds_it(tmp_path):
    """Two 'nodes' see one cluster filesystem directory (as pmxcfs makes /etc/pve the same on every node): PBS
    patching takes the lease through pve1, PVE maintenance through pve2 is refused naming it; each operation's
    cfs lock directory is gone afterwards; the holder releases it through another node."""
    cfs = tmp_path / "pmxcfs"
    (cfs / "priv").mkdir(parents=True)
    path = cfs / "priv" / "pbs-patch" / "maintenance.lease"
    lock_dir = cfs / "priv" / "lock"
    base = {"path": str(path), "lock_dir": str(lock_dir)}
    pbs = lease_module(tmp_path, {**base, "owner": "pbs_patch", "purpose": "patch pbs (VM 104)", "host": "pbs"},
                       host="pve1", inventory=_two_nodes(tmp_path)).result
    assert pbs["failed"] is False, pbs["msg"]
    assert pbs["lock"] == f"cfs lock {lock_dir}/file-priv_pbs-patch_maintenance_lease"
    assert not (path.parent / "maintenance.lease.lock").exists()  # no node-local flock file
    assert list(lock_dir.iterdir()) == []
    pve = lease_module(tmp_path, {**base, "owner": "pve_patch", "purpose": "rolling PVE maintenance"},
                       host="pve2", inventory=_two_nodes(tmp_path)).result
    assert pve["failed"] is True
    assert "maintenance lease is held by owner 'pbs_patch' (purpose: patch pbs (VM 104)) for host pbs" in pve["msg"]
    assert pbs["token"] not in json.dumps(pve)
    done = lease_module(tmp_path, {**base, "state": "released", "token": pbs["token"]}, host="pve2",
                        inventory=_two_nodes(tmp_path)).result
    assert done["failed"] is False and done["action"] == "released"
    assert not path.exists()


def test_cluster_lease_waits_for_a_held_cfs_lock_then_fails_like_pve(tmp_path):
    cfs = tmp_path / "pmxcfs"
    lock_dir = cfs / "priv" / "lock"
    lock_dir.mkdir(parents=True)
    (lock_dir / "file-priv_pbs-patch_maintenance_lease").mkdir()  # another node's operation, stuck
    r = lease_module(tmp_path, {"path": str(cfs / "priv" / "pbs-patch" / "maintenance.lease"),
                                "lock_dir": str(lock_dir), "owner": "pbs_patch", "lock_timeout": 2}).result
    assert r["failed"] is True
    assert "cfs-lock 'file-priv_pbs-patch_maintenance_lease' error: got lock request timeout" in r["msg"]


def _two_nodes(tmp_path):
    inv = tmp_path / "nodes.ini"
    py = VENV_BIN / "python"
    inv.write_text(f"pve1 ansible_connection=local ansible_python_interpreter={py}\n"
                   f"pve2 ansible_connection=local ansible_python_interpreter={py}\n")
    return inv
