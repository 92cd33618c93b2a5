#!/usr/bin/env python
"""pbs_upgrade against real apt-get and dpkg in a sandbox: a dpkg --root tree and a local file: repository,
selected by APT_CONFIG / DPKG_ADMINDIR / DPKG_FORCE (apt-get and dpkg inherit the module's environment).
Nothing on the host changes. Proves: exact package list from dpkg state, second run unchanged, check mode
changes nothing, held packages reported, a timed-out dist-upgrade repaired once or failed; the upgrade runs
detached (here as a daemon: no systemd on a build machine): killing the module mid-dpkg, as a lost SSH connection
does, leaves dpkg to finish, and the next run reports that upgrade; a run finding a worker alive waits for it.

usage: sandbox_upgrade_test.py <pbs_upgrade binary>"""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MODULE = os.path.abspath(sys.argv[1])
FMT = "${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\n"


def deb(work, name, version, control="", postinst=None):
    d = os.path.join(work, "src", f"{name}_{version}")
    out = os.path.join(work, "debs", f"{name}_{version.replace(':', '%3a')}_all.deb")
    if os.path.exists(out):
        return out
    os.makedirs(os.path.join(d, "DEBIAN"))
    os.makedirs(os.path.join(d, "usr/share/doc", name))
    with open(os.path.join(d, "DEBIAN/control"), "w") as f:
        f.write(f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.invalid>\n"
                f"Description: pbs_patch sandbox package\n{control}")
    if postinst:
        p = os.path.join(d, "DEBIAN/postinst")
        with open(p, "w") as f:
            f.write("#!/bin/sh\n" + postinst + "\n")
        os.chmod(p, 0o755)
    with open(os.path.join(d, "usr/share/doc", name, "VERSION"), "w") as f:
        f.write(version)
    subprocess.run(["dpkg-deb", "-Zgzip", "--root-owner-group", "--build", d, out], check=True, capture_output=True)
    return out


class Sandbox:
    def __init__(self, work):
        self.work = work
        self.root = os.path.join(work, "root")
        self.admin = os.path.join(self.root, "var/lib/dpkg")
        for sub in ("info", "updates", "triggers"):
            os.makedirs(os.path.join(self.admin, sub))
        for f in ("status", "available"):
            open(os.path.join(self.admin, f), "w").close()
        for sub in ("debs", "repo", "aptstate/lists/partial", "aptcache/archives/partial", "boot", "log", "none"):
            os.makedirs(os.path.join(work, sub), exist_ok=True)
        with open(os.path.join(work, "sources.list"), "w") as f:
            f.write(f"deb [trusted=yes] file:{work}/repo ./\n")
        with open(os.path.join(work, "apt.conf"), "w") as f:
            f.write(f'''Dir::State "{work}/aptstate";
Dir::State::status "{self.admin}/status";
Dir::Cache "{work}/aptcache";
Dir::Etc::SourceList "{work}/sources.list";
Dir::Etc::SourceParts "{work}/none";
Dir::Etc::Preferences "{work}/none";
Dir::Etc::PreferencesParts "{work}/none";
Dir::Log "{work}/log";
DPkg::Options {{ "--root={self.root}"; "--admindir={self.admin}"; "--force-script-chrootless"; }};
Debug::NoLocking "true";
#clear DPkg::Pre-Install-Pkgs;
DPkg::Pre-Invoke "";
DPkg::Post-Invoke "";
''')
        self.env = dict(os.environ, APT_CONFIG=os.path.join(work, "apt.conf"), DPKG_ADMINDIR=self.admin,
                        DPKG_FORCE="script-chrootless,security-mac,downgrade")

    def dpkg(self, *args):
        subprocess.run(["dpkg", f"--root={self.root}", f"--admindir={self.admin}", "--force-script-chrootless", *args],
                       check=True, capture_output=True)

    def publish(self, *debs):
        for d in debs:
            shutil.copy(d, os.path.join(self.work, "repo"))
        with open(os.path.join(self.work, "repo/Packages"), "w") as f:
            subprocess.run(["dpkg-scanpackages", "."], cwd=os.path.join(self.work, "repo"), stdout=f,
                           stderr=subprocess.DEVNULL, check=True)

    def state(self):
        return subprocess.run(["dpkg-query", f"--admindir={self.admin}", "-W", "-f=" + FMT], capture_output=True,
                              text=True, check=True).stdout

    def run(self, check_mode=False, **params):
        p = subprocess.run([MODULE, self.args_file(check_mode, **params)], capture_output=True, text=True,
                           env=self.env, timeout=300, check=False)
        return json.loads(p.stdout)

    def args_file(self, check_mode=False, **params):
        # Its own state directory, no wait for the host's apt (other builds run dpkg on this machine too).
        args = {"reboot_required_file": os.path.join(self.work, "reboot-required"),
                "boot_path": os.path.join(self.work, "boot"), "_ansible_check_mode": check_mode,
                "_ansible_diff": True, "state_dir": self.state_dir, "apt_wait_timeout": 0, "lock_files": [],
                **params}
        path = os.path.join(self.work, "args.json")
        with open(path, "w") as f:
            json.dump(args, f)
        return path

    @property
    def state_dir(self):
        return os.path.join(self.work, "upgrade-state")

    def upgrade_state(self):
        try:
            with open(os.path.join(self.state_dir, "state.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


FAILURES = []


def check(cond, what, result=None):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, json.dumps(result, indent=1)[:3000] if result is not None else "", file=sys.stderr)


def wait_until(what, predicate, timeout=120):
    """Waits for an event (never a fixed sleep); False after a generous bound."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    check(False, f"timed out waiting for: {what}")
    return False


def sleeping(pid):
    """True while pid sleeps in nanosleep/clock_nanosleep (x86_64 35/230): a module between two polls."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split(" ", 1)[0] in ("35", "230")
    except OSError:
        return False


def packages(result):
    return sorted((p["name"], p["from"], p["to"]) for p in result["packages"])


def start_held_upgrade(sb, work, version):
    """Starts the module on an upgrade to lab-wait VERSION whose postinst waits for a file: returns the module's
    process once dpkg is inside that postinst, and the file that lets it go on (None, None on a timeout)."""
    started, go = os.path.join(work, f"postinst-started-{version}"), os.path.join(work, f"go-{version}")
    sb.publish(deb(work, "lab-wait", version,
                   postinst=f"touch {started}; i=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do sleep 0.1; "
                            f"i=$((i+1)); done"))
    subprocess.run(["apt-get", "update"], env=sb.env, check=True, capture_output=True)
    fg = subprocess.Popen([MODULE, sb.args_file(update_cache=False)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, env=sb.env)
    if wait_until(f"the postinst of lab-wait {version} runs", lambda: os.path.exists(started)):
        return fg, go
    fg.kill()
    fg.wait()
    return None, None


def main():
    if os.geteuid() != 0 or not shutil.which("dpkg-scanpackages"):
        print("skipped: needs root and dpkg-dev (dpkg-scanpackages)")
        return 77
    work = tempfile.mkdtemp(prefix="pbs_upgrade_sandbox_")
    try:
        sb = Sandbox(work)
        initial = [deb(work, "lab-a", "1.0"), deb(work, "lab-c", "1.0"), deb(work, "lab-d", "1.0"),
                   deb(work, "lab-f", "1:2.0~rc1-1")]
        sb.dpkg("-i", *initial)
        subprocess.run(["dpkg", f"--admindir={sb.admin}", "--set-selections"], input="lab-d hold\n", text=True,
                       check=True, capture_output=True)
        sb.publish(deb(work, "lab-a", "1.1", "Depends: lab-b\nConflicts: lab-c\n"), deb(work, "lab-b", "1.0"),
                   deb(work, "lab-c", "1.0"), deb(work, "lab-d", "2.0"), deb(work, "lab-f", "1:2.0-1"))
        subprocess.run(["apt-get", "update"], env=sb.env, check=True, capture_output=True)
        expected = sorted([("lab-a", "1.0", "1.1"), ("lab-b", None, "1.0"), ("lab-c", "1.0", None),
                           ("lab-f", "1:2.0~rc1-1", "1:2.0-1")])

        # Check mode: a simulation, nothing modified.
        before = sb.state()
        r = sb.run(check_mode=True)
        check(r["failed"] is False and r["changed"] is True, "check mode: changed, not failed", r)
        check(packages(r) == expected, "check mode lists what would change", r)
        check(r["held_back"] == ["lab-d"], "check mode reports the held package", r)
        check(any("check mode" in w for w in r.get("warnings", [])), "check mode warns the cache was not refreshed", r)
        check("lab-a 1.1" in r["diff"]["after"] and "lab-c 1.0" in r["diff"]["before"], "diff mode before/after", r)
        check(sb.state() == before, "check mode leaves dpkg state identical")

        # Real run: exactly what dpkg says changed.
        r = sb.run()
        after = sb.state()
        check(r["failed"] is False and r["changed"] is True and r["timed_out"] is False and r["rc"] == 0,
              "real run: changed, rc 0", r)
        check(packages(r) == expected, "real run reports exactly the changed packages", r)
        check(r["held_back"] == ["lab-d"], "real run reports the held package", r)
        check(set(r["steps"]) == {"fix_broken", "update_cache", "dist_upgrade"}, "all three steps ran", r)
        check("lab-a\tall\t1.1\tii " in after and "lab-c" not in after, "dpkg state after the run", after)
        check(r.get("kernel_pending", "missing") is None, "no kernels in the sandbox /boot: pending unknown", r)

        # Second run: nothing to do.
        r = sb.run()
        check(r["failed"] is False and r["changed"] is False and r["packages"] == [], "second run: no change", r)
        check(sb.state() == after, "second run leaves dpkg state identical")

        # Reboot-required flag and a pending kernel are reported.
        with open(os.path.join(work, "reboot-required"), "w") as f:
            f.write("*** System restart required ***\n")
        with open(os.path.join(work, "reboot-required.pkgs"), "w") as f:
            f.write("lab-a\n")
        open(os.path.join(work, "boot", "vmlinuz-99.0.0-1-pve"), "w").close()
        r = sb.run(update_cache=False, fix_broken=False)
        check(r["reboot_required"] is True and r["reboot_required_pkgs"] == ["lab-a"], "reboot-required recorded", r)
        check(r["kernel_pending"] is True and r["kernel"]["newest_installed"] == "99.0.0-1-pve", "pending kernel", r)
        check(set(r["steps"]) == {"dist_upgrade"}, "steps switched off by parameters", r)

        # A failed cache refresh fails the module with apt's stderr.
        with open(os.path.join(work, "sources.list"), "w") as f:
            f.write(f"deb [trusted=yes] file:{work}/missing-repo ./\n")
        r = sb.run()
        check(r["failed"] is True and "apt-get update" in r["msg"] and r["changed"] is False,
              "failed cache refresh fails the module", r)
        check("missing-repo" in r["msg"] or "missing-repo" in r["stderr_tail"], "apt's stderr is in the failure", r)
        with open(os.path.join(work, "sources.list"), "w") as f:
            f.write(f"deb [trusted=yes] file:{work}/repo ./\n")

        # A dist-upgrade that outlives upgrade_timeout: killed (rc 124), dpkg repaired once, not fatal.
        marker = os.path.join(work, "slow-once")
        sb.publish(deb(work, "lab-slow", "1.0"))
        sb.dpkg("-i", os.path.join(work, "debs", "lab-slow_1.0_all.deb"))
        sb.publish(deb(work, "lab-slow", "1.1", postinst=f"[ -e {marker} ] && exit 0; touch {marker}; sleep 60"))
        r = sb.run(upgrade_timeout=3, update_cache=True)
        check(r["failed"] is False and r["timed_out"] is True and r["rc"] == 124, "timeout is not fatal", r)
        check(any("timed out" in w for w in r.get("warnings", [])), "timeout warned", r)
        check("dpkg_configure" in r["steps"], "dpkg --configure -a ran after the timeout", r)
        check(("lab-slow", "1.0", "1.1") in packages(r), "the half-done upgrade is reported from dpkg", r)
        check("lab-slow\tall\t1.1\tii " in sb.state(), "dpkg consistent after the repair")

        # Still inconsistent after the one repair: fail, never reboot a half-configured host.
        sb.publish(deb(work, "lab-slow", "1.2", postinst="sleep 60"))
        r = sb.run(upgrade_timeout=3, dpkg_configure_timeout=3)
        check(r["failed"] is True and "do not reboot" in r["msg"], "still-broken dpkg fails the module", r)
        check(r["changed"] is True and ("lab-slow", "1.1", "1.2") in packages(r), "failure keeps changed truthful", r)
        sb.dpkg("--configure", "-a")  # lab-slow 1.2's postinst ends this time (no timeout here)

        # The connection drops mid-dpkg (the module gets SIGHUP, then is killed): the detached worker goes on,
        # dpkg completes, and the next run reports the upgrade nobody received.
        sb.dpkg("-i", deb(work, "lab-wait", "1.0"))
        fg, go = start_held_upgrade(sb, work, "1.1")
        if fg is not None:
            fg.send_signal(signal.SIGHUP)
            fg.wait(timeout=30)
            check(fg.returncode == -signal.SIGHUP, f"the module died of SIGHUP (rc {fg.returncode})")
            st = sb.upgrade_state()
            check(st is not None and st["status"] == "running", "the worker still runs after the module died", st)
            open(go, "w").close()
            wait_until("the detached upgrade finishes", lambda: (sb.upgrade_state() or {}).get("status") == "finished")
            st = sb.upgrade_state()
            check(st["mode"] == "daemon" and not st["consumed"], "finished by the daemon worker, result not received",
                  st)
            check("lab-wait\tall\t1.1\tii " in sb.state(), "dpkg completed lab-wait 1.1 after the module died")
            audit = subprocess.run(["dpkg", f"--admindir={sb.admin}", "--audit"], capture_output=True, text=True, check=False)
            check(audit.stdout.strip() == "", "dpkg --audit is empty", audit.stdout)
            r = sb.run(update_cache=False)
            check(r["failed"] is False and r["previous_run"] and r["previous_run"]["run_id"] == st["run_id"],
                  "the next run reports the earlier upgrade", r)
            check(("lab-wait", "1.0", "1.1") in packages(r) and r["changed"] is True,
                  "its package changes are in this run's list", r)
            check(any("never received" in w for w in r.get("warnings", [])), "and it says so", r)
            r = sb.run(update_cache=False)
            check(r["previous_run"] is None and r["packages"] == [], "reported once only", r)

        # The connection drops without a SIGHUP (no terminal): the module lives on, waits for the worker, and then
        # finds nobody reading its stdout. The result must stay unreceived, for the next run to report.
        fg, go = start_held_upgrade(sb, work, "1.2")
        if fg is not None:
            fg.stdout.close()  # the reader of the module's output is gone
            open(go, "w").close()
            fg.wait(timeout=300)
            st = sb.upgrade_state()
            check(st is not None and st["status"] == "finished" and not st["consumed"],
                  "a result written to nobody is not marked received", st)
            r = sb.run(update_cache=False)
            check(r["failed"] is False and r["previous_run"] and r["previous_run"]["run_id"] == st["run_id"]
                  and ("lab-wait", "1.1", "1.2") in packages(r), "the next run reports it", r)

        # A worker is alive (its run.lock held): the module waits for it, never starts a second apt beside it.
        os.makedirs(sb.state_dir, exist_ok=True)
        lock = open(os.path.join(sb.state_dir, "run.lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = int(time.time())
        fake = {"run_id": "feedfacefeedface", "status": "running", "mode": "daemon", "unit": "", "worker_pid": 1,
                "boot_id": "", "started_at": now, "bound_s": 600, "consumed": False, "finished_at": None,
                "result": None}
        with open(os.path.join(sb.state_dir, "state.json"), "w") as f:
            json.dump(fake, f)
        before = sb.state()
        fg = subprocess.Popen([MODULE, sb.args_file()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=sb.env)
        if wait_until("the module waits for the running worker", lambda: sleeping(fg.pid)):
            fake.update(status="finished", finished_at=int(time.time()),
                        result={"changed": True, "failed": False, "msg": "changed 1 package(s)",
                                "packages": [{"name": "lab-x", "from": "1", "to": "2", "action": "upgrade"}]})
            with open(os.path.join(sb.state_dir, "state.json"), "w") as f:
                json.dump(fake, f)
        lock.close()
        out, err = fg.communicate(timeout=120)
        r = json.loads(out)
        check(r["failed"] is False and r["attached"] is True and packages(r) == [("lab-x", "1", "2")],
              "attached to the running worker and returned its result", r)
        check("which this run waited for" in r["msg"], "the message says it waited for it", r)
        check(sb.state() == before, "no apt ran beside the worker")
        check(sb.upgrade_state()["consumed"] is True, "the result is marked received")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("all sandbox checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
