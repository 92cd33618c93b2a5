#!/usr/bin/env python
"""The lab's stand-in for qmeventd + 'qm cleanup': runs QEMU (-no-reboot), reads QMP SHUTDOWN events and
decides what follows when QEMU exits:
  guest-reset (guest rebooted itself)      -> a fresh QEMU process (as a PVE guest reboot looks from outside)
  any exit with a reboot request (qm reboot) -> a fresh QEMU process
  otherwise (poweroff, qm shutdown/stop)     -> stay stopped (the supervisor exits)
Fault knob 'no-return' (state/faults/no-return): never start again after a reboot. Fault knob 'no-quorum' on a
lab cluster: the restart fails as qemu-server's does (qm cleanup -> vm_start -> check_cfs_quorum: "cluster not
ready - no quorum?"), so the VM stays stopped."""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--loadvm")
    args = ap.parse_args()
    os.environ["PBS_PATCH_LAB_STATE"] = args.state
    from pbslab import common as C
    from pbslab import pve, vm
    from pbslab.qmp import QMP

    def say(msg):
        print("%s supervisor[%d]: %s" % (time.strftime("%H:%M:%S"), os.getpid(), msg), flush=True)

    C.SUP_PID.write_text("%d\n" % os.getpid())
    loadvm = args.loadvm
    try:
        while True:
            argv = vm.qemu_argv(loadvm)
            loadvm = None
            for p in (C.QMP_SOCK, C.QMP_SUP_SOCK, C.QGA_SOCK):
                p.unlink(missing_ok=True)
            C.keep_console_history()
            with open(C.LOG_QEMU, "ab") as qlog:
                qlog.write(("--- %s %s\n" % (time.strftime("%F %T"), " ".join(argv))).encode())
                qlog.flush()
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qlog, stderr=qlog)
            C.QEMU_PID.write_text("%d\n" % proc.pid)
            say("QEMU started, pid %d, accel %s" % (proc.pid, argv[argv.index("-accel") + 1]))
            reason = None
            mon = None
            deadline = time.monotonic() + 30
            while mon is None and proc.poll() is None and time.monotonic() < deadline:
                try:
                    mon = QMP(C.QMP_SUP_SOCK, timeout=5)
                except (OSError, EOFError, ValueError):
                    time.sleep(0.05)
            if mon is not None:
                try:
                    while True:
                        ev = mon.next_event(timeout=None)
                        if ev.get("event") == "SHUTDOWN":
                            reason = ev.get("data", {}).get("reason")
                            say("SHUTDOWN event, reason %s" % reason)
                except (OSError, EOFError, ValueError):
                    pass
                mon.close()
            rc = proc.wait()
            C.QEMU_PID.unlink(missing_ok=True)
            requested = C.REBOOT_REQUEST.exists()
            C.REBOOT_REQUEST.unlink(missing_ok=True)
            say("QEMU exited rc=%s reason=%s reboot-request=%s" % (rc, reason, requested))
            if C.STOPPING.exists():
                say("stop requested: staying stopped")
                return 0
            if not (requested or reason == "guest-reset"):
                say("staying stopped")
                return 0
            if C.fault_on("no-return"):
                say("fault no-return: the VM does not come back")
                return 0
            if pve.clustered() and not pve.quorate():
                say("Restarting VM %d failed: cluster not ready - no quorum?" % C.VMID)
                pve.event("restart-failed", reason="cluster not ready - no quorum?")
                return 0
            say("reboot: starting a fresh QEMU")
    finally:
        if C.read_pid(C.SUP_PID) == os.getpid():
            C.SUP_PID.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
