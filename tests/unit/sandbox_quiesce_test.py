#!/usr/bin/env python
"""pbs_quiesce end to end without a VM: proxmox-backup-manager is a small stand-in script (datastore list and
update on a JSON file, task list from a JSON file, failing on demand), the active-operations directory and the
tasks/active file are temporary files, /proc is the real one (entries of this process count as live). Proves the
decisions and the result shape; the lab and Molecule prove it on a real guest.

usage: sandbox_quiesce_test.py <pbs_quiesce binary>"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MODULE = os.path.abspath(sys.argv[1])
FAILURES = []


def check(cond, what, result=None):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, json.dumps(result, indent=1)[:3000] if result is not None else "", file=sys.stderr)


PBM = r'''#!/usr/bin/python3
import json, os, sys
work = os.path.dirname(os.path.abspath(__file__))
stores_file, tasks_file = os.path.join(work, "stores.json"), os.path.join(work, "tasks.json")
with open(os.path.join(work, "calls.log"), "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\n")
a = sys.argv[1:]
if os.path.exists(os.path.join(work, "fail-" + "-".join(a[:2]))):
    sys.stderr.write("Error: error trying to connect: tcp connect error: Connection refused (os error 111)\n")
    sys.exit(255)
stores = json.load(open(stores_file))
if a[:2] == ["datastore", "list"]:
    print(json.dumps(stores)); sys.exit(0)
if a[:2] == ["task", "list"]:
    print(open(tasks_file).read()); sys.exit(0)
if a[:2] == ["datastore", "update"]:
    name = a[2]
    for s in stores:
        if s["name"] == name:
            if a[3] == "--delete" and a[4] == "maintenance-mode":
                s.pop("maintenance-mode", None)
            elif a[3] == "--maintenance-mode":
                v = a[4]
                assert v.startswith("type="), v
                t, _, m = v[5:].partition(",message=")
                s["maintenance-mode"] = t + ((",message=" + m.strip('"')) if m else "")
            json.dump(stores, open(stores_file, "w")); sys.exit(0)
    sys.stderr.write("Error: no such datastore '%s'\n" % name); sys.exit(255)
sys.exit(2)
'''

RUNNING = ("UPID:pbs:%08X:%08X:00000000:6B0EB181:backup:store1\\x3avm-101:root@pam:")


def main():
    work = tempfile.mkdtemp(prefix="pbs_quiesce_sandbox_")
    try:
        pbm = os.path.join(work, "pbm")
        with open(pbm, "w") as f:
            f.write(PBM)
        os.chmod(pbm, 0o755)
        ops = os.path.join(work, "active-operations")
        os.makedirs(ops)
        active = os.path.join(work, "tasks-active")
        open(active, "w").close()

        def stores(value=None):
            path = os.path.join(work, "stores.json")
            if value is not None:
                json.dump(value, open(path, "w"))
            return json.load(open(path))

        def tasks(items):
            json.dump(items, open(os.path.join(work, "tasks.json"), "w"))

        def run(check_mode=False, wait=True, **params):
            args = {"pbm_path": pbm, "active_operations_dir": ops, "task_active_file": active,
                    "poll_interval": 1, "_ansible_check_mode": check_mode, **params}
            path = os.path.join(work, "args.json")
            json.dump(args, open(path, "w"))
            p = subprocess.Popen([MODULE, path], stdout=subprocess.PIPE, text=True)
            if not wait:
                return p
            out, err = p.communicate(timeout=120)
            return json.loads(out)

        running = {"upid": RUNNING % (os.getpid(), 1), "node": "pbs", "pid": os.getpid(), "pstart": 1,
                   "starttime": 1796124000, "worker_type": "backup", "worker_id": "store1:vm/101", "user": "root@pam"}
        admin = "offline,message=disk swap by admin"
        stores([{"name": "store1", "path": "/x"}, {"name": "store2", "path": "/y", "maintenance-mode": admin}])
        tasks([])

        # check mode: says what it would set, sets nothing
        r = run(check_mode=True, message="pbs_patch run T: upgrade and reboot")
        check(r["failed"] is False and r["changed"] is True, "check mode reports a change", r)
        check(r["datastores"][0]["set"] == "read-only,message=pbs_patch run T: upgrade and reboot", "would-be mode", r)
        check("would set read-only maintenance on store1" in r["msg"], "check mode msg", r)
        check("maintenance-mode" not in stores()[0] and stores()[1]["maintenance-mode"] == admin, "nothing set", r)

        # quiesce: store1 set, store2 (admin's) left alone; nothing runs
        r = run(message="pbs_patch run T: upgrade, reboot")
        check(r["failed"] is False and r["changed"] is True, "quiesced", r)
        d1, d2 = r["datastores"]
        check(d1 == {"name": "store1", "before": None, "set": "read-only,message=pbs_patch run T: upgrade  reboot",
                     "restored": False, "left_alone": False, "error": None}, "store1 entry (comma sanitized)", r)
        check(d2["left_alone"] is True and d2["before"] == admin and d2["set"] is None, "store2 left alone", r)
        check(any("commas" in w for w in r.get("warnings", [])), "message change warned", r)
        check(stores()[1]["maintenance-mode"] == admin, "admin's mode untouched", r)
        quiesced = r

        # restore: only ours; a second restore changes nothing; the admin's stays
        r = run(state="restored", datastores=quiesced["datastores"])
        check(r["failed"] is False and r["changed"] is True and r["datastores"][0]["restored"] is True, "restored", r)
        check("maintenance-mode" not in stores()[0] and stores()[1]["maintenance-mode"] == admin, "only ours cleared", r)
        r = run(state="restored", datastores=r["datastores"])
        check(r["failed"] is False and r["changed"] is False, "second restore changes nothing", r)
        # someone changed our mode meanwhile: left as they set it, reported, failed
        changed = [dict(quiesced["datastores"][0])]
        s = stores()
        s[0]["maintenance-mode"] = "offline,message=admin took over"
        stores(s)
        r = run(state="restored", datastores=changed)
        check(r["failed"] is True and "changed by someone else" in r["msg"] and "NOT restored" in r["msg"], "changed mode", r)
        check(stores()[0]["maintenance-mode"] == "offline,message=admin took over", "their mode stays", r)
        s = stores()
        s[0].pop("maintenance-mode")
        stores(s)

        # a running task and a live write operation: waited for, named, then timeout restores the mode
        tasks([running])
        me, start = os.getpid(), open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]
        json.dump([{"pid": me, "starttime": int(start), "active_operations": {"read": 0, "write": 1}}],
                  open(os.path.join(ops, "store1"), "w"))
        r = run(timeout=2, message="pbs_patch run U")
        check(r["failed"] is True and "did not quiesce within 2 s" in r["msg"], "timeout fails", r)
        check("task backup store1:vm/101 by root@pam" in r["msg"] and "1 write operation(s)" in r["msg"], "names both", r)
        check("Maintenance mode restored on store1" in r["msg"] and r["datastores"][0]["restored"] is True, "restored", r)
        check("maintenance-mode" not in stores()[0], "timeout left no mode behind", r)
        check(len(r["waited_for"]) == 2 and r["running_tasks"][0]["upid"] == running["upid"], "waited_for", r)

        # the task ends while we wait: quiet, and what we waited for is said
        p = run(wait=False, timeout=60, message="pbs_patch run V")
        time.sleep(2)
        tasks([])
        os.remove(os.path.join(ops, "store1"))
        out, err = p.communicate(timeout=120)
        r = json.loads(out)
        check(r["failed"] is False and r["waited_for"] and "PBS quiet after" in r["msg"], "drained after waiting", r)
        check(stores()[0]["maintenance-mode"] == "read-only,message=pbs_patch run V", "mode stays until restore", r)
        run(state="restored", datastores=r["datastores"])

        # an entry of a process that is gone counts for nothing; a malformed file is never zero
        json.dump([{"pid": 4194300, "starttime": 1, "active_operations": {"read": 3, "write": 3}}],
                  open(os.path.join(ops, "store1"), "w"))
        r = run(state="drained", timeout=0)
        check(r["failed"] is False and r["active_operations"]["store1"] == {"read": 0, "write": 0}, "stale entry", r)
        open(os.path.join(ops, "store1"), "w").write("garbage")
        r = run(state="drained", timeout=1)
        check(r["failed"] is True and "cannot read the active operations of datastore store1" in r["msg"], "malformed", r)
        os.remove(os.path.join(ops, "store1"))

        # the final check fails closed: CLI down and the active file unreadable
        open(os.path.join(work, "fail-task-list"), "w").close()
        open(active, "w").write(running["upid"] + "\n")
        r = run(state="drained", timeout=0)
        check(r["failed"] is True and "backup store1:vm/101" in r["msg"] and r["task_source"] == active,
              "CLI down: the active file is read", r)
        os.remove(active)
        r = run(state="drained", timeout=0)
        check(r["failed"] is True and "cannot tell whether PBS tasks are running" in r["msg"], "fails closed", r)
        open(active, "w").close()
        os.remove(os.path.join(work, "fail-task-list"))
        r = run(state="drained", timeout=0)
        check(r["failed"] is False, "quiet again", r)

        # mode none sets nothing, still waits
        r = run(mode="none", timeout=0)
        check(r["failed"] is False and r["changed"] is False and r["datastores"][0]["set"] is None, "mode none", r)

        # interrupted (a dropped connection: SIGHUP) while waiting: the mode is taken away first
        tasks([running])
        p = run(wait=False, timeout=120, message="pbs_patch run W")
        deadline = time.monotonic() + 60
        while "maintenance-mode" not in stores()[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        p.send_signal(signal.SIGHUP)
        out, err = p.communicate(timeout=60)
        r = json.loads(out)
        check(r["failed"] is True and "interrupted by signal 1" in r["msg"], "SIGHUP ends the wait", r)
        check("maintenance-mode" not in stores()[0], "SIGHUP restored the mode", r)
        tasks([])

        # a datastore update that fails: nothing is left set, the module fails naming it
        stores([{"name": "store1", "path": "/x"}, {"name": "store2", "path": "/y"}])
        open(os.path.join(work, "fail-datastore-update"), "w").close()
        r = run(timeout=0)
        check(r["failed"] is True and "cannot set the maintenance mode of datastore store1" in r["msg"], "update fails", r)
        os.remove(os.path.join(work, "fail-datastore-update"))
        check(all("maintenance-mode" not in s for s in stores()), "nothing left set", r)

        r = run(bogus=1)
        check(r["failed"] is True and "bogus" in r["msg"], "unknown parameter refused", r)
        r = run(state="restored", datastores=[{"set": "x"}])
        check(r["failed"] is True and "no 'name'" in r["msg"], "malformed datastores entry refused", r)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("all quiesce checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
