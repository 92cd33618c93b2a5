"""Acceptance tests of the lab (issue 3). Run: .venv/bin/pytest tests/lab -q   (needs root, QEMU; a few minutes)
The tests run in file order; each test that changes the guest resets it to the pristine snapshot after."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from labhelpers import C, LAB, ROOT, VENV_BIN, run

pytestmark = pytest.mark.lab
# The tests of what differs between guests (Debian, apt, systemd, sshd, the agent, the PBS stand-in's versions,
# APT sources, reboots, fault knobs) run on every guest; the rest (the qm stand-in's own logic) on the default.
EVERY_GUEST = pytest.mark.guests(*C.guests())

UPID_RE = re.compile(r"^UPID:[a-zA-Z0-9-]+:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8,16}:[0-9A-F]{8}:[^:\s]+:[^:\s]*:[^:\s]+:$")
TASK_KEYS = {"upid", "node", "pid", "pstart", "starttime", "worker_type", "worker_id", "user"}


def ansible(*args, timeout=120):
    return run([VENV_BIN / "ansible", "-i", LAB / "inventory.yml"] + list(args), timeout=timeout,
               env=dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1"))


def task_list(lab, *opts, check=True):
    r = lab.ssh("proxmox-backup-manager task list %s" % " ".join(opts), check=check)
    return r


def wait_for(pred, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


# --- from nothing ----------------------------------------------------------------------------------------
@EVERY_GUEST
def test_from_nothing_build_boot_ssh_and_ansible_ping(lab):
    img = C.image_dir()
    for f in ("base.qcow2", "vmlinuz", "initrd.img", "guest.json"):
        assert (img / f).exists(), f
    assert str(img).startswith(str(C.CACHE)) and not str(img).startswith(str(ROOT))
    assert img.name.startswith("image-%s-" % lab.guest)
    st = lab.labctl("status")
    assert "status: running" in st.stdout
    assert "guest: %s (%s" % (lab.guest, lab.info["pretty_name"]) in st.stdout
    assert C.ssh_banner().startswith("SSH-2.0-OpenSSH")
    assert lab.ssh("hostname").stdout.strip() == "pbs"
    snaps = run(["qemu-img", "snapshot", "-U", "-l", C.OVERLAY]).stdout
    assert "pristine" in snaps
    r = ansible("pbs", "-m", "ansible.builtin.ping")
    assert re.search(r"\bping\W+pong\b", r.stdout), r.stdout
    r = ansible("pve", "-m", "ansible.builtin.shell", "-a",
                '"{{ pbs_patch_qm_command }}" config {{ pbs_patch_vmid }}')
    assert "name: pbs" in r.stdout


def test_build_is_cached(lab):
    t0 = time.monotonic()
    r = lab.labctl("build")
    assert time.monotonic() - t0 < 10
    assert "cached" in r.stderr


@EVERY_GUEST
def test_another_guest_is_refused_while_this_one_runs(lab):
    other = next(g for g in C.guests() if g != lab.guest)
    r = lab.labctl("--guest", other, "start", check=False)
    assert r.returncode == 1
    assert "labctl: error: the lab VM runs guest %s; 'lab/labctl stop' it first to start %s" % (lab.guest, other) in r.stderr
    st = lab.labctl("--guest", other, "status").stdout
    assert "guest: %s (" % lab.guest in st and "guest-asked: %s (the next start makes a new disk of it)" % other in st
    assert "status: running" in lab.labctl("status").stdout


DEB822 = "Types: deb\nURIs: file:/srv/lab-repo/{repo}\nSuites: {suite}\nComponents: {comp}\nTrusted: yes\n"
APT_SOURCES = {
    "deb822": {"/etc/apt/sources.list.d/debian.sources": DEB822.format(repo="debian", suite="{suite}", comp="main"),
               "/etc/apt/sources.list.d/proxmox.sources": DEB822.format(repo="proxmox", suite="{suite}",
                                                                        comp="pbs-no-subscription")},
    "one-line": {"/etc/apt/sources.list": "deb [trusted=yes] file:/srv/lab-repo/debian {suite} main\n",
                 "/etc/apt/sources.list.d/pbs-no-subscription.list":
                     "deb [trusted=yes] file:/srv/lab-repo/proxmox {suite} pbs-no-subscription\n"},
}


@EVERY_GUEST
def test_guest_has_pbs_units_agent_and_only_the_lab_repo(lab):
    out = lab.ssh("cat /etc/debian_version; "
                  "systemctl is-enabled proxmox-backup.service proxmox-backup-proxy.service "
                  "proxmox-backup-daily-update.timer; "
                  "systemctl is-active proxmox-backup.service proxmox-backup-proxy.service "
                  "proxmox-backup-daily-update.timer qemu-guest-agent.service ssh.service; "
                  "ss -Hltn 'sport = :8007' | wc -l; "
                  "dpkg-query -W -f='${Version}\\n' proxmox-backup-server; "
                  "pbs-lab-datastore status; . /etc/os-release; echo $VERSION_CODENAME; "
                  "dpkg -L proxmox-backup-server | grep -c '^%s/proxmox-backup.service$'" % lab.profile["unit_dir"]
                  ).stdout.split("\n")
    assert out[0].startswith(lab.info["version_id"] + ".") and out[0] == lab.info["debian_version"]
    assert out[1:4] == ["enabled"] * 3
    assert out[4:9] == ["active"] * 5
    assert out[9] == "1"
    assert out[10] == lab.profile["pbs_installed"]
    assert out[11] == "available"
    assert out[12] == lab.profile["suite"]
    assert out[13] == "1"  # the units where this release's packages put them
    # exactly the APT sources a PBS of this release has, pointing at the lab's local archives
    files = lab.ssh("find /etc/apt/sources.list /etc/apt/sources.list.d -type f 2>/dev/null | sort").stdout.split()
    want = {path: text.format(suite=lab.profile["suite"]) for path, text in APT_SOURCES[lab.profile["apt_sources"]].items()}
    assert files == sorted(want)
    for path, text in want.items():
        assert lab.ssh("cat %s" % path).stdout == text, path
    uris = lab.ssh("apt-get indextargets --format '$(REPO_URI) $(RELEASE)'").stdout
    assert sorted(set(uris.split("\n")) - {""}) == [
        "file:/srv/lab-repo/debian/ %s" % lab.profile["suite"], "file:/srv/lab-repo/proxmox/ %s" % lab.profile["suite"]]


@EVERY_GUEST
def test_pending_upgrades(lab):
    r = lab.ssh("apt-get -s dist-upgrade")
    inst = sorted(re.findall(r"^Inst (\S+) \[(\S+)\] \((\S+)", r.stdout, re.M))
    assert inst == [("pbs-lab-conffile", "1.0-1", "1.1-1"), ("pbs-lab-kernel", "1.0-1", "1.1-1"),
                    ("proxmox-backup-server", lab.profile["pbs_installed"], lab.profile["pbs_pending"])]
    assert {n: (v["from"], v["to"]) for n, v in lab.info["pending_upgrades"].items()} == {n: (a, b) for n, a, b in inst}
    # the Debian package from the Debian archive, the PBS ones from pbs-no-subscription (as on a real PBS)
    assert re.search(r"^Inst pbs-lab-conffile .*Debian:%s " % lab.profile["suite"], r.stdout, re.M), r.stdout
    assert re.search(r"^Inst proxmox-backup-server .*Proxmox Backup Server Debian Repository:%s " % lab.profile["suite"],
                     r.stdout, re.M), r.stdout


# --- proxmox-backup-manager stand-in ---------------------------------------------------------------------
@EVERY_GUEST
def test_task_list_reports_a_running_task_in_the_real_json_shape(pristine):
    lab = pristine
    assert json.loads(task_list(lab, "--output-format json").stdout) == []
    text = task_list(lab).stdout
    assert "starttime" in text and "upid" in text and text.startswith("┌")  # header even when empty
    upid = lab.ssh("pbs-lab-task add --running --type backup --id store1:vm/100").stdout.strip()
    assert UPID_RE.match(upid), upid
    assert ":backup:store1\\x3avm-100:root@pam:" in upid
    items = json.loads(task_list(lab, "--output-format json").stdout)
    assert len(items) == 1
    t = items[0]
    assert set(t) == TASK_KEYS  # running: no endtime, no status
    assert t["upid"] == upid and t["worker_type"] == "backup" and t["worker_id"] == "store1:vm/100"
    assert t["user"] == "root@pam" and t["node"] == "pbs"
    assert isinstance(t["pid"], int) and isinstance(t["pstart"], int) and isinstance(t["starttime"], int)
    assert abs(t["starttime"] - time.time()) < 120
    assert int(upid.split(":")[2], 16) == t["pid"] and int(upid.split(":")[3], 16) == t["pstart"]
    active = lab.ssh("cat /var/log/proxmox-backup/tasks/active").stdout.splitlines()
    assert active == [upid]
    assert json.loads(task_list(lab, "--output-format json-pretty").stdout) == items

    # finished tasks: only with --all; statuses as PBS prints them
    lab.ssh("pbs-lab-task add --status OK --type garbage_collection --id store1; "
            "pbs-lab-task add --status 'WARNINGS: 2' --type verificationjob --id store1:v-1234; "
            "pbs-lab-task add --status 'datastore is not mounted' --type prune --id store1")
    assert [i["upid"] for i in json.loads(task_list(lab, "--output-format json").stdout)] == [upid]
    alltasks = json.loads(task_list(lab, "--all --output-format json").stdout)
    assert len(alltasks) == 4
    finished = {i["worker_type"]: i for i in alltasks if "endtime" in i}
    assert {k: v["status"] for k, v in finished.items()} == {
        "garbage_collection": "OK", "verificationjob": "WARNINGS: 2", "prune": "datastore is not mounted"}
    assert all(set(i) == TASK_KEYS | {"endtime", "status"} for i in finished.values())
    active = lab.ssh("cat /var/log/proxmox-backup/tasks/active").stdout.splitlines()
    assert len(active) == 4 and upid in active
    assert any(re.match(r"^UPID:\S+ [0-9A-F]{8} ERROR: datastore is not mounted$", l) for l in active)
    assert len(json.loads(task_list(lab, "--all --limit 2 --output-format json").stdout)) == 2

    # the running task ends: the default list is empty again
    lab.ssh("pbs-lab-task finish '%s'" % upid)
    assert json.loads(task_list(lab, "--output-format json").stdout) == []


def test_task_list_fails_when_the_api_daemon_is_down(pristine):
    lab = pristine
    lab.ssh("systemctl stop proxmox-backup.service")
    r = task_list(lab, "--output-format json", check=False)
    assert r.returncode == 255 and r.stdout == ""
    assert r.stderr.startswith("Error: ") and "Connection refused" in r.stderr
    lab.ssh("systemctl stop proxmox-backup-proxy.service")
    r = task_list(lab, "--output-format json", check=False)
    assert r.returncode == 255 and "Connection refused" in r.stderr
    lab.ssh("systemctl start proxmox-backup.service proxmox-backup-proxy.service")
    assert json.loads(task_list(lab, "--output-format json").stdout) == []


@EVERY_GUEST
def test_versions_and_datastore_list(lab):
    v = json.loads(lab.ssh("proxmox-backup-manager versions --output-format json").stdout)
    assert len(v) == 1 and v[0]["Package"] == "proxmox-backup-server"
    assert {"Package", "Title", "Arch", "Description", "Version", "OldVersion", "Origin", "Priority",
            "Section", "ExtraInfo"} == set(v[0])
    assert v[0]["OldVersion"] == lab.profile["pbs_installed"]
    assert v[0]["ExtraInfo"] == "running version: %s" % lab.info["pbs"]["running"]
    vv = json.loads(lab.ssh("proxmox-backup-manager versions --verbose --output-format json").stdout)
    assert vv[0]["Package"] == "proxmox-backup" and vv[0]["ExtraInfo"].startswith("running kernel: ")
    assert lab.ssh("proxmox-backup-manager versions").stdout.startswith("proxmox-backup-server ")
    ds = json.loads(lab.ssh("proxmox-backup-manager datastore list --output-format json").stdout)
    assert ds[0]["name"] == "store1" and ds[0]["path"] == "/mnt/datastore/store1"


@EVERY_GUEST
def test_dist_upgrade_keeps_conffile_restarts_daemons_and_asks_for_reboot(pristine):
    lab = pristine
    before = lab.ssh("systemctl show -p MainPID --value proxmox-backup.service").stdout.strip()
    lab.ssh("DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confdef "
            "-o Dpkg::Options::=--force-confold dist-upgrade", timeout=300)
    out = lab.ssh("dpkg-query -W -f='${Version}\\n' proxmox-backup-server; cat /etc/pbs-lab/lab.conf; "
                  "ls /etc/pbs-lab; cat /var/run/reboot-required.pkgs; "
                  "systemctl is-active proxmox-backup.service proxmox-backup-proxy.service; "
                  "systemctl show -p MainPID --value proxmox-backup.service").stdout
    assert out.startswith(lab.profile["pbs_pending"] + "\n")
    assert "setting = local" in out and "lab.conf.dpkg-dist" in out
    assert "pbs-lab-kernel" in out
    assert out.count("active") == 2 and "inactive" not in out
    assert out.strip().split("\n")[-1] == before  # try-reload-or-restart: a reload re-executes in place
    v = json.loads(lab.ssh("proxmox-backup-manager versions --output-format json").stdout)
    assert v[0]["ExtraInfo"] == "running version: %s" % lab.info["pbs"]["running_after_upgrade"]
    assert "Inst " not in lab.ssh("apt-get -s dist-upgrade").stdout


# --- qm stand-in ---------------------------------------------------------------------------------------
def test_qm_status_config_guest_cmd_and_exec(lab):
    assert lab.qm("status", "100").stdout == "status: running\n"
    conf = lab.qm("config", "100").stdout
    assert "name: pbs\n" in conf and "agent: 1\n" in conf
    r = lab.qm("guest", "cmd", "100", "ping")
    assert (r.returncode, r.stdout) == (0, "")
    osinfo = json.loads(lab.qm("guest", "cmd", "100", "get-osinfo").stdout)
    assert osinfo["id"] == "debian" and osinfo["version-id"] == lab.info["version_id"]
    ns = int(lab.qm("guest", "cmd", "100", "get-time").stdout)
    assert abs(ns / 1e9 - time.time()) < 10
    r = lab.qm("guest", "exec", "100", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"exitcode": 3, "exited": 1, "out-data": "out\n", "err-data": "err\n"}
    r = lab.qm("guest", "exec", "100", "--timeout", "1", "--", "sleep", "5")
    assert r.returncode == 0 and json.loads(r.stdout) == {"exited": 0}
    r = lab.qm("status", "999")
    assert r.returncode == 2
    assert re.fullmatch(r"Configuration file 'nodes/[^/]+/qemu-server/999.conf' does not exist\n", r.stderr)


@EVERY_GUEST
def test_qm_reboot_ssh_goes_down_comes_back_with_a_new_boot_id(lab):
    boot_before = lab.boot_id()
    assert json.loads(lab.qm("guest", "cmd", "100", "get-osinfo", check=True).stdout)["id"] == "debian"
    qemu_before = C.qemu_pid()
    t0 = time.monotonic()
    r = lab.qm("reboot", "100")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert not C.proc_is_ours(qemu_before, "qemu-system")  # returned once the guest was down
    assert wait_for(lambda: C.ssh_banner() is None, 10), "SSH never went down"
    C.wait_ssh(600)
    lab.timings["reboot_to_ssh"] = time.monotonic() - t0
    assert lab.boot_id() != boot_before
    assert C.qemu_pid() not in (None, qemu_before)  # a fresh QEMU process, as on Proxmox
    assert wait_for(lambda: lab.qm("guest", "cmd", "100", "get-osinfo").returncode == 0, 30, 1)
    assert json.loads(lab.qm("guest", "cmd", "100", "get-osinfo").stdout)["id"] == "debian"
    assert lab.qm("status", "100").stdout == "status: running\n"


def test_guest_initiated_reboot_is_a_fresh_qemu_too(lab):
    """The supervisor's other path: the guest reboots itself (SHUTDOWN reason guest-reset, -no-reboot)."""
    boot_before, qemu_before = lab.boot_id(), C.qemu_pid()
    lab.ssh("systemctl reboot", check=False)
    assert wait_for(lambda: not C.proc_is_ours(qemu_before, "qemu-system"), 60)
    C.wait_ssh(600)
    assert lab.boot_id() != boot_before
    assert C.qemu_pid() not in (None, qemu_before)
    assert "reason=guest-reset" in C.LOG_SUP.read_text()


@EVERY_GUEST
def test_qm_agent_errors(pristine):
    lab = pristine
    lab.labctl("fault", "agent-unconfigured", "on")
    r = lab.qm("guest", "cmd", "100", "ping")
    assert (r.returncode, r.stderr) == (255, "No QEMU guest agent configured\n")
    lab.labctl("fault", "agent-unconfigured", "off")
    lab.labctl("fault", "no-agent", "on")
    r = lab.qm("guest", "cmd", "100", "get-osinfo")
    assert (r.returncode, r.stderr) == (255, "QEMU guest agent is not running\n")
    r = lab.qm("guest", "exec", "100", "--", "true")
    assert (r.returncode, r.stderr) == (255, "QEMU guest agent is not running\n")
    # without an agent, qm shutdown falls back to ACPI (system_powerdown) and still works
    r = lab.qm("shutdown", "100", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert lab.qm("status", "100").stdout == "status: stopped\n"


def test_qm_reboot_timeout_leaves_the_vm_running(pristine):
    lab = pristine
    lab.labctl("fault", "ignore-shutdown", "on")
    boot = lab.boot_id()
    r = lab.qm("reboot", "100", "--timeout", "4")
    assert (r.returncode, r.stderr) == (255, "VM quit/powerdown failed - got timeout\n")
    assert lab.qm("status", "100").stdout == "status: running\n"
    assert not C.REBOOT_REQUEST.exists()
    assert lab.boot_id() == boot


def test_qm_shutdown_stays_down_and_not_running_errors(pristine):
    lab = pristine
    from pbslab.qmp import QMP
    with QMP(C.QMP_SOCK) as m:
        m.cmd("stop")
    assert lab.qm("status", "100").stdout == "status: paused\n"
    r = lab.qm("reboot", "100")
    assert (r.returncode, r.stderr) == (255, "VM is paused - cannot shutdown\n")
    with QMP(C.QMP_SOCK) as m:
        m.cmd("cont")
    r = lab.qm("shutdown", "100", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    time.sleep(1)
    assert lab.qm("status", "100").stdout == "status: stopped\n"
    assert C.qemu_pid() is None and C.supervisor_pid() is None
    assert C.ssh_banner() is None
    r = lab.qm("reboot", "100")
    assert (r.returncode, r.stderr) == (255, "VM 100 not running\n")
    r = lab.qm("shutdown", "100")
    assert (r.returncode, r.stderr) == (255, "VM 100 not running\n")
    r = lab.qm("guest", "cmd", "100", "ping")
    assert (r.returncode, r.stderr) == (255, "VM 100 is not running\n")
    # qm start returns once QEMU runs (not once the guest booted); qm stop is a hard stop that stays down
    r = lab.qm("start", "100")
    assert (r.returncode, r.stderr) == (0, "")
    assert lab.qm("status", "100").stdout == "status: running\n"
    r = lab.qm("start", "100")
    assert (r.returncode, r.stderr) == (255, "VM 100 already running\n")
    assert lab.qm("stop", "100").returncode == 0
    assert lab.qm("status", "100").stdout == "status: stopped\n"
    assert C.qemu_pid() is None and C.supervisor_pid() is None


def test_fault_no_return(pristine):
    lab = pristine
    lab.labctl("fault", "no-return", "on")
    r = lab.qm("reboot", "100")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: C.supervisor_pid() is None, 15)
    time.sleep(3)
    assert lab.qm("status", "100").stdout == "status: stopped\n"
    assert C.qemu_pid() is None


@EVERY_GUEST
def test_guest_fault_knobs(pristine):
    lab = pristine
    # a live process holds the dpkg lock
    lab.labctl("fault", "dpkg-lock", "on")
    pid = lab.ssh("cat /run/pbs-lab-hold-lock.pid").stdout.strip()
    r = lab.ssh("dpkg --configure -a", check=False)
    # dpkg 1.21 (Debian 12) says "locked by another process with pid N", 1.22 (Debian 13) names the holder's
    # executable: "locked by /usr/bin/python3.13 process with pid N"
    assert r.returncode != 0 and re.search(r"lock was locked by (another|/\S+) process with pid %s$" % pid,
                                           r.stderr, re.M), r.stderr
    lab.labctl("fault", "dpkg-lock", "off")
    lab.ssh("dpkg --configure -a")
    # fault packages become pending only when asked
    lab.labctl("fault", "hang-postinst", "on")
    lab.labctl("fault", "failonce-postinst", "on")
    sim = lab.ssh("apt-get -s dist-upgrade").stdout
    assert "Inst pbs-lab-hang [1.0-1] (1.1-1" in sim and "Inst pbs-lab-failonce [1.0-1] (1.1-1" in sim
    r = lab.ssh("timeout 8 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q pbs-lab-hang", check=False,
                timeout=60)
    assert r.returncode == 124  # the postinst hangs until killed
    lab.reset()  # dpkg is left mid-postinst: back to pristine
    # interrupted dpkg: the failonce postinst fails the first time, dpkg --audit reports it, then it heals
    lab.labctl("fault", "dpkg-interrupted", "on")
    assert "pbs-lab-failonce" in lab.ssh("dpkg --audit").stdout
    lab.labctl("fault", "dpkg-interrupted", "off")
    assert lab.ssh("dpkg --audit").stdout == ""
    # datastore unavailable, also after a reboot (fstab entry disabled)
    lab.labctl("fault", "datastore-unavailable", "on")
    r = lab.ssh("pbs-lab-datastore status; grep -c '^#lab-unavailable# /srv/datastore/store1' /etc/fstab",
                check=False)
    assert r.stdout.split() == ["unavailable", "1"]
    # maintenance mode shows in datastore list
    lab.ssh("pbs-lab-datastore maintenance offline")
    ds = json.loads(lab.ssh("proxmox-backup-manager datastore list --output-format json").stdout)
    assert ds[0]["maintenance-mode"] == "offline"  # as PBS stores it: the default key `type` has no name
    # a PBS daemon that fails to start
    lab.labctl("fault", "proxy-fails", "on")
    assert lab.ssh("systemctl is-active proxmox-backup-proxy.service", check=False).stdout.strip() != "active"


@EVERY_GUEST
def test_reset_to_pristine(lab):
    lab.ssh("touch /root/dirty; pbs-lab-task add --running >/dev/null; systemctl stop proxmox-backup-proxy")
    lab.labctl("fault", "no-return", "on")
    t0 = time.monotonic()
    lab.reset()
    lab.timings["reset"] = time.monotonic() - t0
    before = time.time()
    out = lab.ssh("date +%s.%N; test -e /root/dirty && echo dirty || echo clean; "
                  "systemctl is-active proxmox-backup-proxy; proxmox-backup-manager task list --output-format json")
    after = time.time()
    guest_now, *lines = out.stdout.split("\n")
    # the guest clock was resynced after loadvm: it read a time within the SSH call (however slow that was)
    assert before - 3 <= float(guest_now) <= after + 3, (before, guest_now, after)
    assert lines[0] == "clean"
    assert lines[1] == "active" and lines[2] == "[]"
    assert C.faults() == []
    assert lab.qm("guest", "cmd", "100", "ping").returncode == 0


def test_reset_recovers_a_qemu_that_does_not_answer(lab):
    """What one failed test leaves must not fail the next: a QEMU that answers nothing (stopped with SIGSTOP
    here; a guest hung in a boot looks the same from SSH) is replaced by a fresh one restored from the snapshot."""
    wedged = C.qemu_pid()
    os.kill(wedged, signal.SIGSTOP)
    try:
        diag = lab.labctl("diagnose", "--lines", "5").stdout
        assert "qmp: no answer" in diag and "== %s" % C.CONSOLE in diag, diag
        lab.reset()
    finally:
        if C.proc_is_ours(wedged, "qemu-system"):
            os.kill(wedged, signal.SIGKILL)
    assert C.qemu_pid() not in (None, wedged)
    assert lab.ssh("test -e /root/dirty && echo dirty || echo clean").stdout.strip() == "clean"
    assert "QEMU started" in C.LOG_SUP.read_text()


@EVERY_GUEST
def test_stop_leaves_no_qemu_running(lab):
    lab.labctl("stop")
    assert C.qemu_pid() is None and C.supervisor_pid() is None
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    assert str(C.STATE) not in ps
    assert C.ssh_banner() is None
    print("\nlab timings (s):", {k: round(v, 1) for k, v in lab.timings.items()})
