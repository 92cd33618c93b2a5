"""Helpers of the lab tests (imported by tests/conftest.py and test modules; unique module name, so it
cannot clash with another directory's conftest).

The tests run their own lab instance (state dir lab/.state/pytest, SSH port 2223 unless the environment
sets PBS_PATCH_LAB_STATE / PBS_PATCH_LAB_SSH_PORT), so they never touch a lab someone is using by hand in
the same checkout. The image cache (PBS_PATCH_LAB_CACHE) is shared: it is keyed by the recipe."""
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab"
LABCTL = LAB / "labctl"
QM = LAB / "bin" / "qm"
VENV_BIN = ROOT / ".venv" / "bin"

os.environ.setdefault("PBS_PATCH_LAB_STATE", str(LAB / ".state" / "pytest"))
os.environ.setdefault("PBS_PATCH_LAB_SSH_PORT", "2223")
sys.path.insert(0, str(LAB))
from pbslab import common as C  # noqa: E402

__all__ = ["C", "LAB", "LABCTL", "QM", "ROOT", "VENV_BIN", "Lab", "SessionLock", "run"]


def run(argv, timeout=300, check=True, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kw, check=False)
    if check and r.returncode != 0:
        raise AssertionError("%s -> rc %d\nstdout:\n%s\nstderr:\n%s" % (argv, r.returncode, r.stdout, r.stderr))
    return r


class Lab:
    """One guest's lab VM (tests/conftest.py's session fixture `lab`). `info` is what the guest is (labctl guest:
    Debian, apt, systemd and PBS versions, every pending upgrade); `profile` what its recipe asks for
    (lab/image/guests/<guest>.conf). Assertions compare against these, never against hardcoded versions."""

    def __init__(self, guest=None):
        self.guest = guest or C.DEFAULT_GUEST
        self.profile = C.guest_profile(self.guest)
        self.info = {}
        self.timings = {}

    def load_info(self):
        self.info = json.loads(self.labctl("guest").stdout)
        assert self.info["guest"] == self.guest, self.info
        return self.info

    def labctl(self, *args, timeout=600, check=True):
        return run([LABCTL] + list(args), timeout=timeout, check=check)

    def qm(self, *args, timeout=120, check=False):
        return run([QM] + list(args), timeout=timeout, check=check)

    def ssh(self, cmd, timeout=120, check=True):
        return run([LABCTL, "ssh", "--", cmd], timeout=timeout, check=check)

    def boot_id(self):
        return self.ssh("cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def reset(self):
        self.labctl("reset", timeout=900)


SESSION_LOCK = Path(os.environ.get("PBS_PATCH_LAB_SESSION_LOCK") or "/run/lock/pbs-patch-lab-session.lock")


class SessionLock:
    """One lab test session at a time on this machine (2 cores: one VM; and two sessions of the same
    checkout would share a state dir). flock: released by the kernel when the holder dies."""

    _fd = None      # reentrant within one process (tests/integration reuses this session fixture)
    _depth = 0

    def __init__(self, wait=3600):
        self.wait = wait

    def __enter__(self):
        cls = type(self)
        cls._depth += 1
        if cls._fd is not None:
            return self
        SESSION_LOCK.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(SESSION_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.wait
        said = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    cls._depth -= 1
                    os.close(self.fd)
                    raise RuntimeError("another lab session holds %s for too long" % SESSION_LOCK)
                if not said:
                    sys.stderr.write("\nwaiting for another lab session (%s)...\n" % SESSION_LOCK)
                    said = True
                time.sleep(1)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, ("%d\n" % os.getpid()).encode())
        cls._fd = self.fd
        return self

    def __exit__(self, *exc):
        cls = type(self)
        cls._depth -= 1
        if cls._depth == 0 and cls._fd is not None:
            os.close(cls._fd)
            cls._fd = None
