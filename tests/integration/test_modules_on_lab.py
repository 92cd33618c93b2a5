"""pbs_upgrade and pbs_health on the real lab guest (a Debian VM, real apt/dpkg/systemd), through the real
`ansible-playbook` with plugins/modules as the module path. The same binaries on every guest: Debian 13 (apt 3.0,
systemd 257, PBS 4 stand-in) and Debian 12 (apt 2.6, systemd 252, PBS 3 stand-in).

Uses the lab fixtures of tests/conftest.py (one VM per session, its own state dir and SSH port; the
guest is reset to its pristine snapshot after each test). Run:
    .venv/bin/pytest tests/integration/test_modules_on_lab.py
Build the modules first (cmake --preset release && cmake --build --preset release)."""
import sys
import tempfile
import time
from pathlib import Path

import pytest

_LAB_TESTS = Path(__file__).resolve().parents[1] / "lab"
sys.path.insert(0, str(_LAB_TESTS))
from labhelpers import LAB, ROOT, C  # noqa: E402

from ansible_runner import run_module_play  # noqa: E402


MODULES = ROOT / "plugins" / "modules"
DPKG_FORMAT = r"${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\n"

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not (MODULES / "pbs_upgrade").exists() or not (MODULES / "pbs_health").exists(),
                                 reason="module binaries not built (cmake --build --preset release)")]


def ansible_module(name, args, check=False, diff=False, timeout=2400):
    """One task of module `name` on the lab's pbs through the real ansible-playbook; its registered result."""
    with tempfile.TemporaryDirectory() as tmp:
        return run_module_play(Path(tmp), name, args, check=check, diff=diff, timeout=timeout, host="pbs",
                               inventory=LAB / "inventory.yml").result


def dpkg_state(lab):
    """{name: version} of the guest's present packages, straight from dpkg-query."""
    text = lab.ssh("dpkg-query -W -f='%s'" % DPKG_FORMAT).stdout
    state = {}
    for line in text.splitlines():
        name, _arch, version, status = line.split("\t")
        if len(status) >= 2 and status[1] not in "nc":
            state[name] = version
    return state


def dpkg_diff(before, after):
    changes = [(n, v, after.get(n)) for n, v in before.items() if after.get(n) != v]
    changes += [(n, None, v) for n, v in after.items() if n not in before]
    return sorted(changes)


EVERY_GUEST = pytest.mark.guests(*C.guests())


def reported(result):
    return sorted((p["name"], p["from"], p["to"]) for p in result["packages"])


@EVERY_GUEST
def test_upgrade_check_mode_changes_nothing(pristine):
    before = dpkg_state(pristine)
    r = ansible_module("pbs_upgrade", {}, check=True, diff=True)
    assert not r.get("failed"), r
    assert r["changed"] is True, r
    assert r["packages"], r
    assert any(p["name"] == "proxmox-backup-server" for p in r["packages"]), r
    assert r["diff"]["after"], r
    assert dpkg_state(pristine) == before


@EVERY_GUEST
def test_upgrade_reports_exactly_what_dpkg_changed_then_nothing(pristine):
    before = dpkg_state(pristine)
    plan = ansible_module("pbs_upgrade", {}, check=True)
    r = ansible_module("pbs_upgrade", {"upgrade_timeout": 1800})
    after = dpkg_state(pristine)
    assert not r.get("failed"), r
    assert r["timed_out"] is False and r["rc"] == 0, r
    assert r["changed"] is True, r
    assert reported(r) == dpkg_diff(before, after)
    assert reported(r) == reported(plan), "the simulation listed what the real run changed"
    assert r["kernel_pending"] is False, r  # the lab boots its newest installed kernel (lab/README.md)

    again = ansible_module("pbs_upgrade", {"upgrade_timeout": 1800})
    assert not again.get("failed"), again
    assert again["changed"] is False and again["packages"] == [], again
    assert dpkg_state(pristine) == after


def wait_for_guest(lab, what, command, timeout=600):
    """Polls a guest command until it succeeds (an event, never a fixed sleep); fails after a generous bound."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.ssh(command, check=False).returncode == 0:
            return
        time.sleep(2)
    raise AssertionError(f"timed out waiting for: {what}")


def test_a_lost_connection_mid_dpkg_leaves_dpkg_to_finish_and_a_rerun_reports_it(pristine):
    before = dpkg_state(pristine)
    pristine.labctl("fault", "cut-ssh", "on")  # every SSH connection cut when dpkg starts
    r = ansible_module("pbs_upgrade", {"upgrade_timeout": 1800})
    assert r.get("unreachable") is True, r
    assert pristine.ssh("cat /run/pbs-lab-cut-ssh.fired").stdout.strip()
    wait_for_guest(pristine, "the detached upgrade to finish",
                   "grep -q '\"status\": \"finished\"' /var/lib/pbs-patch/upgrade/state.json")
    after = dpkg_state(pristine)
    assert after != before
    assert pristine.ssh("dpkg --audit").stdout.strip() == ""
    # The rerun reports the upgrade whose result was lost, and changes nothing more.
    again = ansible_module("pbs_upgrade", {"upgrade_timeout": 1800})
    assert not again.get("failed"), again
    assert again["previous_run"] and not again["previous_run"]["failed"], again
    assert reported(again) == dpkg_diff(before, after), again
    assert any("never received" in w for w in again.get("warnings", [])), again
    assert again["detached"]["mode"] == "systemd" and again["detached"]["unit"] == "pbs-patch-upgrade.service"
    assert dpkg_state(pristine) == after


def test_an_apt_lock_taken_after_the_gate_is_waited_for(pristine):
    # unattended-upgrades waking up between the gate and the upgrade: the holder lets go once the upgrade's
    # worker has seen it (asleep between two looks), so the wait is proven whatever the machine's speed.
    holder = int(pristine.ssh("pbs-lab-hold-lock --until-waited-on 'pbs_upgrade --worker' --max 600").stdout)
    r = ansible_module("pbs_upgrade", {"upgrade_timeout": 1800, "apt_wait_timeout": 600, "apt_poll_interval": 1})
    assert not r.get("failed"), r
    assert r["changed"] is True, r
    assert holder in [p["pid"] for p in r["lock_wait"]["waited_for"]], r["lock_wait"]
    assert any("waited" in w for w in r.get("warnings", [])), r


@EVERY_GUEST
def test_health_passes_on_the_pristine_guest(pristine):
    boot_id = pristine.boot_id()
    r = ansible_module("pbs_health", {"expect_boot_id_not": "00000000-0000-0000-0000-000000000000"}, check=True)
    assert not r.get("failed"), r
    assert r["changed"] is False
    assert r["health_summary"]["healthy"] is True, r
    assert r["boot_id"] == boot_id
    assert [s["id"] for s in r["services"]] == ["proxmox-backup.service", "proxmox-backup-proxy.service"]
    assert r["pbs_version"] == {"installed": pristine.profile["pbs_installed"], "candidate": pristine.profile["pbs_pending"],
                                "running": pristine.info["pbs"]["running"]}, r["pbs_version"]
    r = ansible_module("pbs_health", {"expect_boot_id_not": boot_id})
    assert r["failed"] is True and "did not go through a reboot" in r["msg"], r


@pytest.mark.parametrize("action,unit,words", [
    ("stop", "proxmox-backup-proxy", "proxmox-backup-proxy.service not active (inactive/dead)"),
    ("disable", "proxmox-backup", "proxmox-backup.service not enabled (disabled)"),
])
def test_health_names_a_stopped_or_disabled_unit(pristine, action, unit, words):
    pristine.ssh("systemctl %s %s" % (action, unit))
    r = ansible_module("pbs_health", {})
    assert r["failed"] is True, r
    assert r["changed"] is False
    assert words in r["msg"], r
    assert r["health_summary"]["healthy"] is False
