"""Starting, observing and stopping the lab VM (used by labctl and the qm stand-in)."""
import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import common as C
from . import pve
from .qmp import QMP, QMPError, AgentError, agent_call

SUPERVISOR = Path(__file__).resolve().parent / "supervisor.py"
QEMU = os.environ.get("PBS_PATCH_LAB_QEMU") or "qemu-system-x86_64"
TCG = ["-accel", "tcg,thread=multi,tb-size=128", "-cpu", "max"]
KVM = ["-accel", "kvm", "-cpu", "host"]


def qemu_version():
    try:
        return subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    except OSError:
        raise C.LabError("%s not found: run scripts/setup.sh (installs qemu-system-x86)" % QEMU)


def probe_kvm(kernel):
    """Can KVM run our kernel here? /dev/kvm existing is not enough (lab-notes: nested paravirtual KVM
    aborts on MSRs or hangs in the kernel's decompressor). Boot the kernel without a root disk for a few
    seconds and look for the kernel getting past early boot. Result cached per QEMU version and kernel."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm not usable"
    cache = C.CACHE / "accel-probe.json"
    key = "%s|%s|%d" % (qemu_version(), kernel, os.stat(kernel).st_size)
    known = C.read_json(cache, {})
    if key in known:
        return known[key]["kvm"], known[key]["why"] + " (cached probe)"
    cmd = [QEMU] + KVM + ["-m", "256", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                          "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent",
                          "-serial", "stdio"]
    ok, why = False, "no kernel output under KVM within 8 s"
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        os.set_blocking(p.stdout.fileno(), False)
        out, deadline = b"", time.monotonic() + 8
        while time.monotonic() < deadline and p.poll() is None:
            chunk = p.stdout.read() or b""
            out += chunk
            if b"VFS: " in out or b"Kernel panic" in out or b"Run /init" in out:
                ok, why = True, "KVM boots the guest kernel"
                break
            time.sleep(0.1)
        if p.poll() is not None and not ok:
            why = "QEMU/KVM exited: " + (out + (p.stdout.read() or b"")).decode(errors="replace")[-200:]
        if p.poll() is None:
            p.kill()
        p.wait()
    except OSError as e:
        why = str(e)
    known[key] = {"kvm": ok, "why": why.strip()}
    C.CACHE.mkdir(parents=True, exist_ok=True)
    C.write_json(cache, known)
    return ok, why


def accel_args(kernel):
    """TCG unless asked otherwise: every bound of the lab and its tests is measured under TCG, and the KVM of
    these machines is a nested paravirtual one (lab-notes: it aborts on MSRs or hangs in the kernel's
    decompressor), so a probe that passed for one short boot proves little about the next. A lab whose only
    choice is the one measured boots alike on every machine. PBS_PATCH_LAB_ACCEL=auto probes KVM; =kvm forces it."""
    want = os.environ.get("PBS_PATCH_LAB_ACCEL") or "tcg"
    if want == "tcg":
        return TCG, "tcg"
    if want == "kvm":
        return KVM, "kvm (PBS_PATCH_LAB_ACCEL=kvm)"
    if want != "auto":
        raise C.LabError("PBS_PATCH_LAB_ACCEL must be tcg, kvm or auto, not %r" % want)
    ok, why = probe_kvm(kernel)
    return (KVM, "kvm: " + why) if ok else (TCG, "tcg: " + why)


def qemu_argv(loadvm=None):
    meta = C.read_json(C.OVERLAY_META)
    if not meta or not C.OVERLAY.exists():
        raise C.LabError("no lab disk yet: run 'lab/labctl start' first")
    img = Path(meta["image_dir"])
    accel, _why = accel_args(img / "vmlinuz")
    argv = [QEMU, "-name", "%s,debug-threads=on" % C.VM_NAME, "-machine", "q35"] + accel + [
        "-smp", "2", "-m", str(C.MEMORY_MB), "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", str(img / "vmlinuz"), "-initrd", str(img / "initrd.img"),
        "-append", "root=/dev/vda rw console=ttyS0 quiet loglevel=3 mitigations=off",
        "-drive", "file=%s,if=virtio,format=qcow2,cache=unsafe,discard=unmap" % C.OVERLAY,
        "-netdev", "user,id=n0,hostname=pbs,hostfwd=tcp:127.0.0.1:%d-:22" % C.SSH_PORT,
        "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
        "-chardev", "socket,path=%s,server=on,wait=off,id=qga0" % C.QGA_SOCK,
        "-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        "-qmp", "unix:%s,server=on,wait=off" % C.QMP_SOCK,
        "-qmp", "unix:%s,server=on,wait=off" % C.QMP_SUP_SOCK,
        "-serial", "file:%s" % C.CONSOLE, "-rtc", "base=utc", "-no-reboot"]
    argv += smbios_args()
    if loadvm:
        argv += ["-loadvm", loadvm]
    return argv


def smbios_args():
    """-smbios type=1,... from the VM config's smbios1, as qemu-server's config_to_command builds it (sorted
    keys, base64 values decoded except the uuid, commas doubled): the guest's product_uuid is the config's."""
    path = pve.vm_conf_path() or (pve.VM_TEMPLATE if pve.VM_TEMPLATE.exists() else None)
    if path is None:
        return []
    value = pve.read_conf(path).get("smbios1")
    if not value:
        return []
    fields = dict(kv.split("=", 1) for kv in value.split(",") if "=" in kv)
    b64 = fields.pop("base64", "0") in ("1", "true", "on", "yes")
    out = ""
    for key in sorted(fields):
        v = fields[key]
        if b64 and key != "uuid":
            v = base64.b64decode(v).decode(errors="replace")
        v = v.replace(",", ",,")
        if v:
            out += ",%s=%s" % (key, v)
    return ["-smbios", "type=1" + out]


def is_running():
    return C.qemu_pid() is not None


def qmp(timeout=10.0):
    return QMP(C.QMP_SOCK, timeout=timeout)


def status():
    """'running', 'paused', 'stopped' or another QMP run state (prelaunch, ...)."""
    if not is_running():
        return "stopped"
    try:
        with qmp(timeout=5) as m:
            st = m.cmd("query-status")
        s = st.get("status", "running")
        return {"running": "running", "paused": "paused", "prelaunch": "prelaunch",
                "inmigrate": "prelaunch", "postmigrate": "paused", "finish-migrate": "paused",
                "save-vm": "running", "restore-vm": "running", "suspended": "suspended"}.get(s, s)
    except (OSError, QMPError, EOFError, ValueError):
        return "running" if is_running() else "stopped"


def start(loadvm=None, timeout=60):
    """Start QEMU under the supervisor (detached). Returns once QEMU answers on QMP."""
    if C.supervisor_pid() or is_running():
        raise C.LabError("VM %d already running" % C.VMID)
    C.STATE.mkdir(parents=True, exist_ok=True)
    argv = qemu_argv(loadvm)  # validates before forking
    for p in (C.QMP_SOCK, C.QMP_SUP_SOCK, C.QGA_SOCK, C.QEMU_PID, C.STOPPING):
        p.unlink(missing_ok=True)
    C.write_json(C.STATE / "qemu-argv.json", argv)
    with open(C.LOG_SUP, "ab") as logf:
        sup = subprocess.Popen([sys.executable, str(SUPERVISOR), "--state", str(C.STATE)]
                               + (["--loadvm", loadvm] if loadvm else []),
                               stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
                               close_fds=True, env=dict(os.environ, PYTHONPATH=str(C.LAB_DIR)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sup.poll() is not None:
            raise C.LabError("QEMU did not start (supervisor exit %s); last lines of %s:\n%s"
                             % (sup.returncode, C.LOG_QEMU, tail(C.LOG_QEMU)))
        if is_running() and C.QMP_SOCK.exists():
            try:
                with qmp(timeout=2):
                    return
            except (OSError, QMPError, EOFError):
                pass
        time.sleep(0.1)
    raise C.LabError("QEMU did not answer on QMP within %ds" % timeout)


TERMINAL_CONTROL = re.compile(r"\x1b(\[[0-9;?!]*[A-Za-z]|\][^\x07\n]*\x07?|.)|[\x00-\x08\x0b-\x1f\x7f]")


def tail(path, n=15, keep=lambda line: True):
    """The last n non-empty lines of a log (those keep() accepts), without terminal control sequences."""
    try:
        text = TERMINAL_CONTROL.sub("", Path(path).read_text(errors="replace"))
    except OSError:
        return "(no log)"
    return "\n".join([line.rstrip() for line in text.splitlines() if line.strip() and keep(line)][-n:]) or "(empty)"


def agent_ping(timeout=3.0):
    try:
        agent_call(C.QGA_SOCK, "guest-ping", timeout=timeout)
        return True
    except (AgentError, OSError):
        return False


def wait_gone(timeout):
    """Wait until the QEMU process is gone. True if it went."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running():
            return True
        time.sleep(0.2)
    return not is_running()


def stop(timeout=30):
    """Hard stop (like 'qm stop'): QMP quit, no restart, also when a reboot is under way; then make sure
    nothing of ours is left (SIGKILL as a last resort, only pids whose command line is ours)."""
    C.STATE.mkdir(parents=True, exist_ok=True)
    C.STOPPING.write_text("1\n")
    C.REBOOT_REQUEST.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_running():
            try:
                with qmp(timeout=5) as m:
                    m.cmd("quit")
            except (OSError, QMPError, EOFError):
                pass
            wait_gone(10)
        if not C.supervisor_pid() and not is_running():
            break
        time.sleep(0.1)
    for getter, name in ((C.supervisor_pid, "supervisor"), (C.qemu_pid, "QEMU")):
        pid = getter()
        if pid:
            C.log(f"{name} (pid {pid}) still there: SIGKILL")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.2)
    if C.qemu_pid() or C.supervisor_pid():
        raise C.LabError("could not stop QEMU/supervisor")
    for p in (C.QEMU_PID, C.SUP_PID):
        p.unlink(missing_ok=True)
