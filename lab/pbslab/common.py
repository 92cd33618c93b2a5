"""Paths, settings and small helpers shared by lab/labctl, lab/bin/qm and the supervisor (stdlib only)."""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent.parent
IMAGE_RECIPE = LAB_DIR / "image"
CACHE = Path(os.environ.get("PBS_PATCH_LAB_CACHE") or "/var/cache/pbs-patch-lab")
STATE = Path(os.environ.get("PBS_PATCH_LAB_STATE") or (LAB_DIR / ".state"))
SSH_PORT = int(os.environ.get("PBS_PATCH_LAB_SSH_PORT") or "2222")
SSH_KEY = CACHE / "ssh" / "id_ed25519"
VMID = 100
VM_NAME = "pbs"
MEMORY_MB = int(os.environ.get("PBS_PATCH_LAB_MEMORY") or "1024")
SNAPSHOT = "pristine"
# Seconds a start or reset waits for an SSH login (and a first boot for systemd to settle): generous, since a
# 2-core machine running several emulated VMs was seen to need almost four minutes for one boot (load average
# 12); an idle one needs 10-30 s. Only a failing boot waits this long.
BOOT_TIMEOUT = int(os.environ.get("PBS_PATCH_LAB_BOOT_TIMEOUT") or "600")

QMP_SOCK = STATE / "qmp.sock"          # for qm / labctl (one client at a time)
QMP_SUP_SOCK = STATE / "qmp-sup.sock"  # the supervisor's own monitor (events)
QGA_SOCK = STATE / "qga.sock"
QEMU_PID = STATE / "qemu.pid"
SUP_PID = STATE / "supervisor.pid"
OVERLAY = STATE / "overlay.qcow2"
OVERLAY_META = STATE / "overlay.json"
REBOOT_REQUEST = STATE / "reboot-request"   # like /run/qemu-server/<vmid>.reboot on PVE
STOPPING = STATE / "stopping"               # labctl stop / qm stop: the supervisor must not restart
FAULTS = STATE / "faults"
PVESH_DIR = STATE / "pvesh"                 # lab/bin/pvesh answers from here (vzdump jobs, storages)
LEASE = STATE / "maintenance.lease"         # the maintenance lease of the lab's "PVE node" (lab/inventory.yml)
GUEST_INFO = STATE / "guest.json"           # what the disk's guest is (a copy of its image's guest.json)


def clear_pve_state():
    """The PVE node's side of a pristine lab: no vzdump jobs, storages or tasks set by a test, no maintenance
    lease (the cluster filesystem itself is remade by pbslab.pve.make_single_node)."""
    shutil.rmtree(PVESH_DIR, ignore_errors=True)
    for p in (LEASE, LEASE.with_name(LEASE.name + ".lock")):
        p.unlink(missing_ok=True)


LOG_SUP = STATE / "supervisor.log"
LOG_QEMU = STATE / "qemu.log"
CONSOLE = STATE / "console.log"                  # this QEMU process's serial console (QEMU truncates it)
CONSOLE_HISTORY = STATE / "console-history.log"  # the consoles of the QEMU processes before it
CONSOLE_HISTORY_MAX = 512 * 1024


def keep_console_history():
    """Before a QEMU start (which truncates console.log): append the last process's console to the history, so
    that a boot that hung after a reboot can still be read when the next start or reset has begun. Bounded."""
    try:
        last = CONSOLE.read_bytes()
    except OSError:
        return
    if not last:
        return
    try:
        old = CONSOLE_HISTORY.read_bytes()
    except OSError:
        old = b""
    stamp = time.strftime("%F %T", time.localtime(CONSOLE.stat().st_mtime))
    text = old + (b"\n--- console of a QEMU process, last written %s ---\n" % stamp.encode()) + last
    CONSOLE_HISTORY.write_bytes(text[-CONSOLE_HISTORY_MAX:])


class LabError(Exception):
    pass


def node_name():
    return os.environ.get("PBS_PATCH_LAB_NODE") or socket.gethostname().split(".")[0]


def log(msg):
    sys.stderr.write("labctl: %s\n" % msg)
    sys.stderr.flush()


def read_pid(path):
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def pid_cmdline(pid):
    try:
        return Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
    except OSError:
        return []


def proc_is_ours(pid, marker):
    """True if pid is alive, not a zombie, and its command line mentions marker and our state dir."""
    if not pid:
        return False
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
        if stat[stat.rindex(")") + 2] == "Z":
            return False
    except (OSError, ValueError):
        return False
    cmd = b" ".join(pid_cmdline(pid)).decode(errors="replace")
    return marker in cmd and str(STATE) in cmd


def qemu_pid():
    pid = read_pid(QEMU_PID)
    return pid if proc_is_ours(pid, "qemu-system") else None


def supervisor_pid():
    pid = read_pid(SUP_PID)
    return pid if proc_is_ours(pid, "supervisor.py") else None


# --- guests: one image recipe, one profile per guest (lab/image/guests/<guest>.conf) ---------------------
GUESTS_DIR = IMAGE_RECIPE / "guests"
DEFAULT_GUEST = "debian13"


def guests():
    """Names of the guests the recipe can build, the default first (debian13, debian12)."""
    names = sorted((p.stem for p in GUESTS_DIR.glob("*.conf")), reverse=True)
    return sorted(names, key=lambda n: n != DEFAULT_GUEST)


def guest_profile(name):
    """The profile's key=value lines (the image scripts source the same file)."""
    path = GUESTS_DIR / ("%s.conf" % name)
    if name not in guests():
        raise LabError("unknown guest '%s' (known: %s)" % (name, ", ".join(guests())))
    prof = {}
    for line in path.read_text().splitlines():
        key, eq, value = line.partition("=")
        if eq and not line.startswith("#"):
            prof[key.strip()] = value.strip()
    return prof


def explicit_guest():
    """The guest asked for (labctl --guest, or PBS_PATCH_LAB_GUEST), or None."""
    name = os.environ.get("PBS_PATCH_LAB_GUEST") or None
    if name is not None:
        guest_profile(name)  # validates
    return name


def disk_guest():
    """The guest of this lab instance's disk, or None when it has none (or one made before guests existed)."""
    return read_json(OVERLAY_META, {}).get("guest") if OVERLAY.exists() else None


def guest():
    """The guest this lab instance works with: the one asked for, else the one its disk has, else the default.
    So `labctl --guest debian12 start` followed by `labctl reset` stays on debian12."""
    return explicit_guest() or disk_guest() or DEFAULT_GUEST


def guest_info():
    """What the instance's guest is (guest.json, written by labctl build from what the image build recorded):
    Debian and tool versions, the PBS stand-in's installed and pending versions, every pending upgrade."""
    return read_json(GUEST_INFO) or read_json(image_dir() / "guest.json") or {}


def recipe_files(name=None):
    """The files an image depends on: the whole recipe except other guests' profiles."""
    name = name or guest()
    files = []
    for p in sorted(IMAGE_RECIPE.rglob("*")):
        if not p.is_file() or "__pycache__" in p.parts:
            continue
        if p.parent == GUESTS_DIR and p.name != "%s.conf" % name:
            continue
        files.append(p)
    return files


def stage1_name(name=None):
    """Cache dir of the debootstrap tree: per suite, keyed by stage1.sh (two guests of one suite share it)."""
    suite = guest_profile(name or guest())["suite"]
    h = hashlib.sha256((IMAGE_RECIPE / "stage1.sh").read_bytes() + b"\0" + suite.encode()).hexdigest()[:16]
    return "stage1-%s-%s" % (suite, h)


def image_hash(name=None):
    """Key of a guest's base image: the recipe files it depends on (names and contents) plus the lab's public key."""
    name = name or guest()
    h = hashlib.sha256(name.encode() + b"\0")
    for p in recipe_files(name):
        h.update(str(p.relative_to(IMAGE_RECIPE)).encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    pub = Path(str(SSH_KEY) + ".pub")
    if pub.exists():
        h.update(pub.read_bytes())
    return h.hexdigest()[:16]


def image_dir(h=None, name=None):
    """image-<guest>-<hash> in the cache: each guest has its own image, so both live in one cache."""
    name = name or guest()
    return CACHE / ("image-%s-%s" % (name, h or image_hash(name)))


def faults():
    try:
        return sorted(p.name for p in FAULTS.iterdir())
    except FileNotFoundError:
        return []


def fault_on(name):
    return (FAULTS / name).exists()


def set_fault(name, on, note=""):
    FAULTS.mkdir(parents=True, exist_ok=True)
    p = FAULTS / name
    if on:
        p.write_text(note or "on\n")
    elif p.exists():
        p.unlink()


def ssh_base(port=None, timeout=10):
    return ["ssh", "-i", str(SSH_KEY), "-p", str(port or SSH_PORT), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=%d" % timeout, "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3", "root@127.0.0.1"]


def ssh_banner(port=None, timeout=2.0):
    """The SSH banner at the forwarded port, or None. A bare TCP accept proves nothing under QEMU user
    networking (it accepts while the guest's sshd is down): only the protocol banner counts."""
    try:
        with socket.create_connection(("127.0.0.1", port or SSH_PORT), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            line = data.split(b"\n")[0].strip().decode(errors="replace")
            return line if line.startswith("SSH-2.0-OpenSSH") else None
    except OSError:
        return None


def ssh_run(cmd, timeout=60, check=True, input=None):
    """Run a shell command in the guest as root over SSH; returns CompletedProcess (text)."""
    r = subprocess.run(ssh_base() + ["--", cmd], input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise LabError("guest command failed (rc=%d): %s\n%s%s" % (r.returncode, cmd, r.stdout, r.stderr))
    return r


def ssh_login_ok(timeout=10):
    try:
        r = subprocess.run(ssh_base(timeout=timeout) + ["--", "true"], capture_output=True, timeout=timeout + 5, check=False)
        return r.returncode == 0
    except subprocess.TimeoutExpired:
        return False


def guest_panic():
    """The kernel's panic line on this QEMU's serial console (a fresh file per QEMU process), or None."""
    try:
        text = CONSOLE.read_text(errors="replace")
    except OSError:
        return None
    at = text.find("Kernel panic - not syncing")
    return text[at:].splitlines()[0].strip() if at >= 0 else None


def wait_ssh(timeout=120, alive=None):
    """Wait for the banner, then a real login. alive(): optional check that aborts the wait early; a guest
    kernel panic ends the wait at once too (it would never answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise LabError("the VM stopped while waiting for SSH (see %s)" % CONSOLE)
        panic = guest_panic()
        if panic:
            raise LabError("the guest kernel panicked: %s (see %s)" % (panic, CONSOLE))
        # A generous banner wait: while sshd is down the guest refuses at once (user networking then closes the
        # port), so a long wait costs nothing; once sshd listens but is slow (sshd-session is exec'd per connection
        # under emulation), a short wait would abandon connections that sshd still serves, one after the other,
        # and the pile of abandoned ones would keep it busy (seen with OpenSSH 10 on Debian 13).
        if ssh_banner(timeout=min(15.0, max(1.0, deadline - time.monotonic()))) and ssh_login_ok(timeout=max(10, BOOT_TIMEOUT // 18)):
            return True
        time.sleep(0.3)
    raise LabError("no SSH login on 127.0.0.1:%d within %ds (see %s)" % (SSH_PORT, timeout, CONSOLE))


def write_json(path, obj):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def other_lab_vms():
    """State dirs of lab supervisors of other instances running on this machine (2 cores: one VM at a time)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        args = pid_cmdline(int(d.name))
        if any(a.endswith(b"pbslab/supervisor.py") for a in args) and b"--state" in args:
            st = args[args.index(b"--state") + 1].decode(errors="replace")
            if Path(st) != STATE:
                found.append(st)
    return sorted(set(found))
