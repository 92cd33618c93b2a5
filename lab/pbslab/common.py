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
CONF_DIR = STATE / "qemu-server"
PVESH_DIR = STATE / "pvesh"                 # lab/bin/pvesh answers from here (vzdump jobs, storages)
LEASE = STATE / "maintenance.lease"         # the maintenance lease of the lab's "PVE node" (lab/inventory.yml)


def clear_pve_state():
    """The PVE node's side of a pristine lab: no vzdump jobs or storages set by a test, no maintenance lease."""
    shutil.rmtree(PVESH_DIR, ignore_errors=True)
    for p in (LEASE, LEASE.with_name(LEASE.name + ".lock")):
        p.unlink(missing_ok=True)


LOG_SUP = STATE / "supervisor.log"
LOG_QEMU = STATE / "qemu.log"
CONSOLE = STATE / "console.log"


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


def recipe_files():
    files = []
    for p in sorted(IMAGE_RECIPE.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            files.append(p)
    return files


def stage1_hash():
    return hashlib.sha256((IMAGE_RECIPE / "stage1.sh").read_bytes()).hexdigest()[:16]


def image_hash():
    """Key of the base image: every recipe file (names and contents) plus the lab's public key."""
    h = hashlib.sha256()
    for p in recipe_files():
        h.update(str(p.relative_to(IMAGE_RECIPE)).encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    pub = Path(str(SSH_KEY) + ".pub")
    if pub.exists():
        h.update(pub.read_bytes())
    return h.hexdigest()[:16]


def image_dir(h=None):
    return CACHE / ("image-" + (h or image_hash()))


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


def wait_ssh(timeout=120, alive=None):
    """Wait for the banner, then a real login. alive(): optional check that aborts the wait early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise LabError("the VM stopped while waiting for SSH (see %s)" % CONSOLE)
        if ssh_banner() and ssh_login_ok():
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
