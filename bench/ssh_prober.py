#!/usr/bin/env python
"""Watches the lab guest's SSH from the host during the patch play's reboot (bench/patch_cycle.sh).

Phase 1, once a second: is the OpenSSH banner there (gone = missing 3 times in a row) (not a bare TCP connect: QEMU's forwarded port accepts while
sshd is down)? Phase 2, after the banner went away: every 0.2 s, the banner, and once it is back a real login
(ssh ... true) until one works; then it exits. Events go as JSON lines to --out:
{"t": epoch, "event": "banner_down"|"banner_up"|"login_ok"}. Light on purpose: no logins while the upgrade runs.
"""
import argparse
import json
import signal
import socket
import subprocess
import sys
import time

stop = False


def banner(port, timeout=1.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = s.recv(256)
            return data.startswith(b"SSH-2.0-OpenSSH")
    except OSError:
        return False


def login(port, key):
    cmd = ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
           "-o", "ConnectTimeout=3", "root@127.0.0.1", "true"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=8, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: globals().__setitem__("stop", True))
    with open(a.out, "a", encoding="utf-8") as out:
        def note(event, t):
            out.write(json.dumps({"t": t, "event": event}) + "\n")
            out.flush()
        misses, first_miss = 0, None
        while not stop:  # phase 1: "down" = no banner 3 times in a row (a busy guest can miss one)
            t = time.time()
            if banner(a.port, timeout=3.0):
                misses = 0
            else:
                misses += 1
                first_miss = first_miss if misses > 1 else t
                if misses >= 3:
                    note("banner_down", first_miss)
                    break
            time.sleep(1.0)
        up = False
        while not stop:  # phase 2
            t = time.time()
            if not up:
                if banner(a.port):
                    up = True
                    note("banner_up", t)
                    continue
            elif login(a.port, a.key):
                note("login_ok", t)
                break
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
