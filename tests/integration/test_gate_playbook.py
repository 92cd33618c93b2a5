"""pbs_gate through the real ansible-playbook on localhost: each gate's pass and fail paths.

Proxmox's own CLI cannot be installed here, so `proxmox-backup-manager` is a script answering in
the recorded real JSON shapes (tests/unit/fixtures), or failing as it does when its API is down.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_runner import fake_command, run_module_play

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures"
API_DOWN = ("echo 'Error: error trying to connect: tcp connect error: Connection refused (os error 111)' >&2\n"
            "exit 255\n")


@pytest.fixture
def pbs(tmp_path):
    """A fake PBS toolchain: pbm answering from a JSON file, an active-tasks file, free lock files."""
    state = tmp_path / "pbs"
    state.mkdir()
    tasks = state / "tasks.json"
    tasks.write_text("[]")
    pbm = fake_command(state / "proxmox-backup-manager", f'cat "{tasks}"\n')
    locks = [state / "lock-frontend", state / "lock"]
    for lock in locks:
        lock.touch()
    args = {
        "pbm_path": str(pbm),
        "task_active_file": str(state / "active"),
        "lock_files": [str(p) for p in locks],
        "apt_wait_timeout": 3,
        "apt_poll_interval": 1,
        "min_root_free_gb": 1,
    }
    return {"dir": state, "tasks": tasks, "pbm": pbm, "locks": locks, "args": args}


def gate(tmp_path, args, **kw):
    return run_module_play(tmp_path, "pbs_gate", args, **kw)


def test_no_pbs_tooling_is_a_clear_failure(tmp_path):
    run = gate(tmp_path, {"pbm_path": str(tmp_path / "absent" / "proxmox-backup-manager")})
    r = run.result
    assert r["failed"] is True
    assert "not a Proxmox Backup Server host" in r["msg"]
    assert r["failed_check"] == "tooling"
    assert r["checks"]["tooling"]["status"] == "failed"
    # Nothing after the failed gate ran.
    for name in ("root_free_space", "running_tasks", "package_manager", "dpkg_state"):
        assert r["checks"][name]["status"] == "skipped"
        assert "not run" in r["checks"][name]["detail"]
    assert r["changed"] is False
    assert "not a Proxmox Backup Server host" in run.output


def test_default_path_on_a_host_without_pbs(tmp_path):
    r = gate(tmp_path, {}).result
    assert r["failed"] is True
    assert "/usr/sbin/proxmox-backup-manager" in r["msg"]


@pytest.mark.parametrize("args, words", [
    ({"min_root_free_gb": "lots"}, ["min_root_free_gb", "int", "lots"]),
    ({"repair_dpkg": "perhaps"}, ["repair_dpkg", "bool", "perhaps"]),
    ({"min_root_free_gb": -3}, ["min_root_free_gb", ">= 0"]),
    ({"min_free": 5}, ["Unsupported parameters: min_free", "min_root_free_gb"]),
    ({"lock_files": {"a": 1}}, ["lock_files", "list"]),
])
def test_bad_parameters_are_clear_failures(tmp_path, args, words):
    r = gate(tmp_path, args).result
    assert r["failed"] is True
    for word in words:
        assert word in r["msg"], r["msg"]
    assert "checks" not in r  # refused before any check ran


def test_all_gates_pass_and_report_facts(tmp_path, pbs):
    r = gate(tmp_path, pbs["args"]).result
    assert r["failed"] is False, r["msg"]
    assert r["changed"] is False
    assert {c["status"] for c in r["checks"].values()} == {"passed"}
    facts = r["facts"]
    assert len(facts["boot_id"]) == 36
    assert facts["kernel_release"] == os.uname().release
    assert facts["root_free_gb"] >= 1
    assert isinstance(facts["reboot_required"], bool)
    assert facts["uptime_s"] > 0


def test_survey_strings_are_cast(tmp_path, pbs):
    args = dict(pbs["args"], min_root_free_gb="1", apt_wait_timeout="3", repair_dpkg="yes")
    r = gate(tmp_path, args).result
    assert r["failed"] is False, r["msg"]


def test_running_backup_fails_naming_it(tmp_path, pbs):
    pbs["tasks"].write_text((FIXTURES / "task_list_running.json").read_text())
    r = gate(tmp_path, pbs["args"]).result
    assert r["failed"] is True
    assert r["failed_check"] == "running_tasks"
    assert "backup store1:vm/100 by root@pam" in r["msg"]
    assert "UPID:pbs:0000044F" in r["msg"]
    assert r["running_tasks"][0]["worker_type"] == "backup"
    assert r["checks"]["package_manager"]["status"] == "skipped"


def test_finished_tasks_do_not_block(tmp_path, pbs):
    # --all output includes one running task; drop it and keep the finished ones.
    import json
    finished = [t for t in json.loads((FIXTURES / "task_list_all.json").read_text()) if "endtime" in t]
    pbs["tasks"].write_text(json.dumps(finished))
    r = gate(tmp_path, pbs["args"]).result
    assert r["failed"] is False, r["msg"]


def test_api_down_falls_back_to_active_file_and_finds_the_running_task(tmp_path, pbs):
    fake_command(pbs["pbm"], API_DOWN)
    (pbs["dir"] / "active").write_text((FIXTURES / "tasks_active.txt").read_text())
    r = gate(tmp_path, pbs["args"]).result
    assert r["failed"] is True
    assert r["checks"]["running_tasks"]["source"].endswith("/active")
    assert "backup store1:vm/100" in r["msg"]
    assert any("task list failed" in w for w in r.get("warnings", []))


def test_out_of_range_numbers_from_the_cli_fall_back_to_the_active_file(tmp_path, pbs):
    # A starttime of 2^64-1 used to wrap to -1 and pass as a task; now it is malformed output like any other,
    # and the daemon's active-tasks file decides (here: a running backup).
    import json
    tasks = json.loads((FIXTURES / "task_list_all.json").read_text())
    tasks[0]["starttime"] = 18446744073709551615
    pbs["tasks"].write_text(json.dumps(tasks))
    (pbs["dir"] / "active").write_text((FIXTURES / "tasks_active.txt").read_text())
    r = gate(tmp_path, pbs["args"]).result
    assert r["failed"] is True
    assert r["checks"]["running_tasks"]["source"].endswith("/active")
    assert "backup store1:vm/100" in r["msg"]
    assert any("'starttime' is out of range" in w for w in r.get("warnings", [])), r.get("warnings")


def test_api_down_with_only_finished_tasks_in_active_file_passes_with_warning(tmp_path, pbs):
    fake_command(pbs["pbm"], API_DOWN)
    lines = [l for l in (FIXTURES / "tasks_active.txt").read_text().splitlines() if len(l.split(" ")) > 1]
    (pbs["dir"] / "active").write_text("\n".join(lines) + "\n")
    r = gate(tmp_path, pbs["args"]).result
    assert r["failed"] is False, r["msg"]
    assert any("Connection refused" in w for w in r["warnings"])


def test_api_down_and_no_active_file_fails_closed(tmp_path, pbs):
    fake_command(pbs["pbm"], API_DOWN)
    r = gate(tmp_path, pbs["args"]).result
    assert r["failed"] is True
    assert r["failed_check"] == "running_tasks"
    assert "cannot tell whether PBS tasks are running" in r["msg"]


def test_garbage_from_the_cli_is_never_no_tasks(tmp_path, pbs):
    fake_command(pbs["pbm"], "echo '┌──────┐ upid │'\n")
    r = gate(tmp_path, pbs["args"]).result
    assert r["failed"] is True
    assert "cannot tell whether PBS tasks are running" in r["msg"]


def test_low_space_fails_and_is_skipped_only_in_check_mode(tmp_path, pbs):
    args = dict(pbs["args"], min_root_free_gb=1_000_000)
    r = gate(tmp_path, args).result
    assert r["failed"] is True
    assert r["failed_check"] == "root_free_space"
    assert "below the 1000000 GiB minimum" in r["msg"]
    r = gate(tmp_path, args, check=True).result
    assert r["failed"] is False, r["msg"]
    assert r["checks"]["root_free_space"]["status"] == "skipped"
    assert "check mode" in r["checks"]["root_free_space"]["detail"]


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    """A live process holding an fcntl lock on `path`, as apt-get holds lock-frontend."""
    code = ("import fcntl,sys,time; f=open(sys.argv[1],'w'); fcntl.lockf(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(float(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_held_lock_bounded_wait_then_failure_naming_the_pid(tmp_path, pbs):
    holder = _hold_lock(pbs["locks"][0], 60)
    try:
        started = time.monotonic()
        r = gate(tmp_path, pbs["args"]).result
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert r["failed"] is True
    assert r["failed_check"] == "package_manager"
    assert f"pid {holder.pid}" in r["msg"]
    assert "still busy after waiting 3 s" in r["msg"]
    assert r["checks"]["package_manager"]["lock_holders"][0]["pid"] == holder.pid
    assert elapsed < 30
    assert r["checks"]["dpkg_state"]["status"] == "skipped"


_HOLD_UNTIL_WAITED_ON = """
import fcntl, os, sys, time
f = open(sys.argv[1], 'w')
fcntl.lockf(f, fcntl.LOCK_EX)
print('locked', flush=True)
# Release once a process running `text` sleeps in (clock_)nanosleep: the gate's pause between two scans,
# which it only takes after seeing a holder. Deterministic where a timed holder was not (it could be gone
# before a slow ansible-playbook reached the gate). At most 120 s.
text, deadline = sys.argv[2], time.monotonic() + 120
while time.monotonic() < deadline:
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            if text in open('/proc/%s/cmdline' % pid, 'rb').read().decode(errors='replace') and \
                    open('/proc/%s/syscall' % pid).read().split(' ')[0] in ('35', '230'):
                sys.exit(0)
        except OSError:
            pass
    time.sleep(0.05)
"""


def test_lock_released_within_the_bound_proceeds(tmp_path, pbs):
    # The holder lets go once it has seen the gate asleep between two looks at the locks (so the gate surely saw
    # it), never at a fixed time: a slow machine cannot make this pass or fail by timing.
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_UNTIL_WAITED_ON, str(pbs["locks"][1]), "AnsiballZ_pbs_gate"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    holder = proc
    try:
        r = gate(tmp_path, dict(pbs["args"], apt_wait_timeout=300)).result
    finally:
        holder.kill()
        holder.wait()
    assert r["failed"] is False, r["msg"]
    check = r["checks"]["package_manager"]
    assert check["waited_for"][0]["pid"] == holder.pid
    assert "waited" in check["detail"]


_FAKE_WORKER = """
import fcntl, json, os, shutil, subprocess, sys, time
state_dir, started_at, bound, text = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(state_dir, exist_ok=True)
lock = open(os.path.join(state_dir, "run.lock"), "w")
fcntl.flock(lock, fcntl.LOCK_EX)
# Its "apt": a child whose comm is dpkg, as a running dist-upgrade has.
dpkg = os.path.join(state_dir, "dpkg")
shutil.copy("/bin/sleep", dpkg)
child = subprocess.Popen([dpkg, "600"])
with open(os.path.join(state_dir, "state.json"), "w") as f:
    json.dump({"run_id": "0123456789abcdef", "status": "running", "mode": "daemon", "unit": "", "boot_id": "",
               "worker_pid": os.getpid(), "started_at": started_at, "bound_s": bound, "consumed": False,
               "finished_at": None, "result": None}, f)
print("running %d" % child.pid, flush=True)
deadline = time.monotonic() + 120
while text and time.monotonic() < deadline:  # until the gate is seen between two polls (it has seen us)
    done = False
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if text in open("/proc/%s/cmdline" % pid, "rb").read().decode(errors="replace") and \
                    open("/proc/%s/syscall" % pid).read().split(" ")[0] in ("35", "230"):
                done = True
        except OSError:
            pass
    if done:
        break
    time.sleep(0.05)
if not text:
    time.sleep(120)
child.kill()
child.wait()
"""


def _fake_worker(state_dir: Path, started_at: int, bound: int, until_waited_on: str = ""):
    proc = subprocess.Popen([sys.executable, "-c", _FAKE_WORKER, str(state_dir), str(started_at), str(bound),
                             until_waited_on], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    assert line[:1] == ["running"], line
    return proc, int(line[1])


def _stop_worker(worker: subprocess.Popen, dpkg_pid: int) -> None:
    """SIGKILL to the fake worker leaves its "dpkg" child behind: ended too, so no later test sees it as activity."""
    worker.kill()
    worker.wait()
    try:
        os.kill(dpkg_pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_our_own_detached_upgrade_is_waited_for_not_taken_for_foreign_activity(tmp_path, pbs):
    # A rerun after a lost connection: the earlier run's pbs_upgrade worker still runs, with a dpkg below it.
    state_dir = tmp_path / "upgrade-state"
    worker, dpkg_pid = _fake_worker(state_dir, int(time.time()), 600, "AnsiballZ_pbs_gate")
    try:
        r = gate(tmp_path, dict(pbs["args"], upgrade_state_dir=str(state_dir), apt_wait_timeout=2)).result
    finally:
        _stop_worker(worker, dpkg_pid)
    assert r["failed"] is False, r["msg"]
    check = r["checks"]["package_manager"]
    assert "an earlier run's upgrade" in check["detail"]
    assert check["own_upgrade"]["worker_pid"] == worker.pid
    assert dpkg_pid not in [p["pid"] for p in check["waited_for"]]  # its dpkg is ours, not a stranger


def test_our_own_upgrade_past_its_bound_fails_saying_so(tmp_path, pbs):
    state_dir = tmp_path / "upgrade-state"
    worker, dpkg_pid = _fake_worker(state_dir, int(time.time()) - 10_000, 60)
    try:
        r = gate(tmp_path, dict(pbs["args"], upgrade_state_dir=str(state_dir))).result
    finally:
        _stop_worker(worker, dpkg_pid)
    assert r["failed"] is True
    assert r["failed_check"] == "package_manager"
    assert "an earlier run's upgrade) is still running past its own bound of 60 s" in r["msg"]
    assert "not starting another apt beside it" in r["msg"]


@pytest.fixture
def fake_dpkg(tmp_path):
    """A dpkg whose --audit reports a half-configured package until --configure -a has run."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "dpkg.log"
    fixed = tmp_path / "configured"
    fake_command(bindir / "dpkg", f"""\
        echo "$*" >> "{log}"
        case "$*" in
          --audit)
            if [ ! -e "{fixed}" ]; then
              echo "The following packages are only half configured, probably due to problems"
              echo "configuring them the first time.  The configuration should be retried using"
              echo "dpkg --configure <package> or the configure menu option in dselect:"
              echo " pbs-lab-flaky        a package whose postinst failed once"
              exit 1
            fi ;;
          *--configure\\ -a) touch "{fixed}" ;;
        esac
        exit 0
        """)
    return {"path": f"{bindir}:{os.environ['PATH']}", "log": log}


def test_unfinished_dpkg_work_is_repaired_and_reported_changed(tmp_path, pbs, fake_dpkg):
    r = gate(tmp_path, pbs["args"], env={"PATH": fake_dpkg["path"]}).result
    assert r["failed"] is False, r["msg"]
    assert r["changed"] is True
    assert "repaired" in r["checks"]["dpkg_state"]["detail"]
    assert "pbs-lab-flaky" in r["checks"]["dpkg_state"]["audit"]
    calls = fake_dpkg["log"].read_text().splitlines()
    assert calls == ["--audit", "--force-confdef --force-confold --configure -a", "--audit"]


def test_check_mode_reports_the_repair_and_does_not_run_it(tmp_path, pbs, fake_dpkg):
    r = gate(tmp_path, pbs["args"], env={"PATH": fake_dpkg["path"]}, check=True).result
    assert r["failed"] is False, r["msg"]
    assert r["changed"] is True
    assert "would run dpkg --configure -a" in r["checks"]["dpkg_state"]["detail"]
    assert fake_dpkg["log"].read_text().splitlines() == ["--audit"]


def test_repair_disabled_fails_on_unfinished_work(tmp_path, pbs, fake_dpkg):
    r = gate(tmp_path, dict(pbs["args"], repair_dpkg=False), env={"PATH": fake_dpkg["path"]}).result
    assert r["failed"] is True
    assert r["failed_check"] == "dpkg_state"
    assert "repair_dpkg is false" in r["msg"]
