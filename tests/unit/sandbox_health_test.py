#!/usr/bin/env python
"""pbs_health end to end with stand-in tools: systemctl and proxmox-backup-manager are small scripts on PATH
that print the recorded samples from fixtures/, datastores are temporary directories, /proc is a fake tree.
Proves the verdicts and the health_summary shape; the lab proves it on a real systemd.

usage: sandbox_health_test.py <pbs_health binary> <fixtures dir>"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

MODULE = os.path.abspath(sys.argv[1])
FIXTURES = os.path.abspath(sys.argv[2])
FAILURES = []


def check(cond, what, result=None):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, json.dumps(result, indent=1)[:3000] if result is not None else "", file=sys.stderr)


def script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)


def main():
    work = tempfile.mkdtemp(prefix="pbs_health_sandbox_")
    try:
        bindir = os.path.join(work, "bin")
        os.makedirs(bindir)
        show = os.path.join(work, "show.txt")
        stores = os.path.join(work, "stores.json")
        # systemctl: prints the recorded sample the case under test put in show.txt.
        script(os.path.join(bindir, "systemctl"), f'cat "{show}"')
        tasks = os.path.join(FIXTURES, "task_list_all.json")
        script(os.path.join(work, "pbm"), f'''case "$1 $2" in
  "task list") case "$*" in *--all*) cat "{tasks}";; *) echo "[]";; esac ;;
  "versions --output-format") cat "{FIXTURES}/pbs_versions.json" ;;
  "datastore list") cat "{stores}" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac''')
        proc = os.path.join(work, "proc")
        os.makedirs(os.path.join(proc, "sys/kernel/random"))
        with open(os.path.join(proc, "sys/kernel/random/boot_id"), "w") as f:
            f.write("5b1f3e52-9a3c-4c1e-8f0e-2d7a1c6b9e10\n")
        with open(os.path.join(proc, "uptime"), "w") as f:
            f.write("73.42 120.01\n")
        store1 = os.path.join(work, "mnt/store1")
        os.makedirs(os.path.join(store1, ".chunks"))
        with open(stores, "w") as f:
            json.dump([{"name": "store1", "path": store1, "gc-schedule": "daily"}], f)
        env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""))

        def run(check_mode=False, **params):
            params.setdefault("proxy_port", 0)
            args = {"pbm_path": os.path.join(work, "pbm"), "proc_path": proc,
                    "reboot_required_file": os.path.join(work, "reboot-required"),
                    "boot_path": os.path.join(work, "boot"), "_ansible_check_mode": check_mode, **params}
            path = os.path.join(work, "args.json")
            with open(path, "w") as f:
                json.dump(args, f)
            p = subprocess.run([MODULE, path], capture_output=True, text=True, env=env, timeout=60, check=False)
            return json.loads(p.stdout)

        shutil.copy(os.path.join(FIXTURES, "systemctl_show_pbs_healthy.txt"), show)
        r = run(expect_boot_id_not="00000000-0000-0000-0000-000000000000")
        s = r.get("health_summary", {})
        check(r["failed"] is False and r["changed"] is False, "healthy host passes, never changed", r)
        check(s.get("healthy") is True and s.get("problems") == [], "health_summary healthy", r)
        check([u["id"] for u in s["services"]] == ["proxmox-backup.service", "proxmox-backup-proxy.service"], "units", r)
        check(s["boot"]["new_boot"] is True, "boot id differs from the expected old one", r)
        check(s["pbs_version"]["running"] == "3.2.4", "running version from versions JSON", r)
        check(s["datastores"][0]["available"] is True, "datastore available", r)
        check(s["system"]["uptime_s"] == 73.42 and isinstance(s["system"]["root_free_gb"], int), "system facts", r)
        check(r["task_counts"] == s["tasks"]["counts"] and sum(r["task_counts"].values()) == len(r["tasks"]) > 0,
              "task counts add up", r)
        starts = [t["starttime"] for t in r["tasks"]]
        check(starts == sorted(starts, reverse=True), "tasks newest first", r)
        check(all("outcome" in t for t in r["tasks"]), "each task has its outcome", r)
        r2 = run(check_mode=True, expect_boot_id_not="00000000-0000-0000-0000-000000000000")
        check(r2["failed"] is False and r2["changed"] is False and r2["health_summary"]["healthy"] is True,
              "check mode: same verdict", r2)
        r = run(task_limit=2)
        check(len(r["tasks"]) == 2, "task_limit bounds the list", r)

        # A failed unit: the module fails and names it with its states.
        shutil.copy(os.path.join(FIXTURES, "systemctl_show_pbs_proxy_failed.txt"), show)
        r = run()
        check(r["failed"] is True and r["changed"] is False, "failed proxy fails the module", r)
        check("proxmox-backup-proxy.service not active (failed/failed)" in r["msg"], "msg names the failed unit", r)
        check(r["health_summary"]["healthy"] is False, "summary unhealthy", r)

        # Inactive/disabled, masked, not found: every failing unit is named.
        shutil.copy(os.path.join(FIXTURES, "systemctl_show_states.txt"), show)
        r = run(services=["proxmox-backup", "pbsrec-failed", "pbsrec-idle", "pbsrec-masked", "pbs-nosuch"])
        for needle in ("pbsrec-failed.service not active (failed/failed)",
                       "pbsrec-idle.service not active (inactive/dead), not enabled (disabled)",
                       "pbsrec-masked.service masked", "pbs-nosuch.service not found"):
            check(needle in r["msg"], f"msg names: {needle}", r)
        check("proxmox-backup.service" not in r["msg"].replace("proxmox-backup.service not", ""), "healthy unit not named", r)

        # Same boot id as before the reboot: no proof of a power cycle.
        shutil.copy(os.path.join(FIXTURES, "systemctl_show_pbs_healthy.txt"), show)
        r = run(expect_boot_id_not="5b1f3e52-9a3c-4c1e-8f0e-2d7a1c6b9e10")
        check(r["failed"] is True and "did not go through a reboot" in r["msg"], "unchanged boot id fails", r)

        # A datastore whose disk did not mount: an empty mount point.
        shutil.rmtree(os.path.join(store1, ".chunks"))
        r = run()
        check(r["failed"] is True and "datastore store1 unavailable" in r["msg"], "unmounted datastore fails", r)
        r = run(check_datastores=False)
        check(r["failed"] is False, "datastore check can be switched off", r)
        os.makedirs(os.path.join(store1, ".chunks"))

        # Maintenance mode is reported (warning), not a failure.
        with open(stores, "w") as f:
            json.dump([{"name": "store1", "path": store1, "maintenance-mode": "type=read-only"}], f)
        r = run()
        check(r["failed"] is False and r["datastores"][0]["maintenance_mode"]["type"] == "read-only", "maintenance", r)
        check(any("maintenance mode read-only" in w for w in r.get("warnings", [])), "maintenance warned", r)

        # Task list unavailable: reported, not a health failure.
        script(os.path.join(work, "pbm"), f'''case "$1 $2" in
  "task list") echo "Error: error trying to connect: Connection refused" >&2; exit 255 ;;
  "versions --output-format") cat "{FIXTURES}/pbs_versions.json" ;;
  "datastore list") cat "{stores}" ;;
esac''')
        r = run()
        check(r["failed"] is False and r["health_summary"]["tasks"]["error"], "task list error reported", r)
        # The proxy must really answer on its port: a recorded OpenSSL ServerHello answers, a silent listener does not.
        script(os.path.join(work, "pbm"), f'''case "$1 $2" in
  "task list") case "$*" in *--all*) cat "{tasks}";; *) echo "[]";; esac ;;
  "versions --output-format") cat "{FIXTURES}/pbs_versions.json" ;;
  "datastore list") cat "{stores}" ;;
esac''')
        hello = bytes.fromhex(open(os.path.join(FIXTURES, "tls_reply_server_hello.hex")).read().strip())
        tls = socket.socket()
        tls.bind(("127.0.0.1", 0))
        tls.listen(8)

        def serve():
            while True:
                try:
                    c, addr = tls.accept()
                except OSError:
                    return
                c.recv(4096)
                c.sendall(hello)
                c.close()
        threading.Thread(target=serve, daemon=True).start()
        r = run(proxy_port=tls.getsockname()[1])
        check(r["failed"] is False and r["proxy"]["answer"] == "tls" and r["proxy"]["answered"] is True,
              "a TLS answer on the port passes", r)
        check("port %d answers (tls)" % tls.getsockname()[1] in r["msg"], "msg says the port answers", r)
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        r = run(proxy_port=silent.getsockname()[1], settle_timeout=1)
        check(r["failed"] is True and "nothing answers on port %d" % silent.getsockname()[1] in r["msg"],
              "units active but nothing answering fails naming the port", r)
        check("although proxmox-backup-proxy.service is active/running" in r["msg"], "msg says the proxy is active", r)
        check(r["settle"]["settled"] is False and r["settle"]["waited_for"], "the wait for the port is reported", r)
        silent.close()
        tls.close()

        # Units still activating are waited for, not failed at once (a proxy that takes its time after boot):
        # systemctl prints the recorded 'activating' sample twice, then the healthy one.
        calls = os.path.join(work, "calls")
        script(os.path.join(bindir, "systemctl"), f'''n=$(cat "{calls}" 2>/dev/null || echo 0); echo $((n+1)) > "{calls}"
if [ "$n" -lt 2 ]; then cat "{FIXTURES}/systemctl_show_pbs_proxy_activating.txt"; else cat "{FIXTURES}/systemctl_show_pbs_healthy.txt"; fi''')
        r = run(settle_timeout=30)
        check(r["failed"] is False and r["settle"]["settled"] is True and r["settle"]["polls"] == 3,
              "activating units are retried until they settle", r)
        check("proxmox-backup-proxy.service activating/start" in r["settle"]["waited_for"], "what was waited for", r)
        # ... but only within the bound: still activating then fails naming the unit
        script(os.path.join(bindir, "systemctl"), f'cat "{FIXTURES}/systemctl_show_pbs_proxy_activating.txt"')
        r = run(settle_timeout=2)
        check(r["failed"] is True and "proxmox-backup-proxy.service not active (activating/start)" in r["msg"]
              and r["settle"]["settled"] is False, "still activating after the bound fails", r)
        r = run()
        check(r["failed"] is True and r["settle"]["polls"] == 1, "settle_timeout 0 judges at once", r)
        script(os.path.join(bindir, "systemctl"), f'cat "{show}"')

        # A boot id that is not a UUID (an error text read while the host went down) proves nothing.
        with open(os.path.join(proc, "sys/kernel/random/boot_id"), "w") as f:
            f.write("Connection to 127.0.0.1 closed by remote host.\n")
        r = run(expect_boot_id_not="5b1f3e52-9a3c-4c1e-8f0e-2d7a1c6b9e10")
        check(r["failed"] is True and "boot id unreadable" in r["msg"] and r["boot_id"] is None, "non-UUID boot id", r)

        r = run(bogus=1)
        check(r["failed"] is True and "bogus" in r["msg"], "unknown parameter refused", r)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("all health checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
