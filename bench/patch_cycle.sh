#!/usr/bin/env bash
# Benchmark (prints figures; not a test): one full patch cycle on the lab VM with the real playbook, then the
# task time of each of our binary modules against Python modules on the same guest.
#   total wall time and its parts (gate, upgrade, shutdown, boot-to-SSH, login, verify),
#   the delay between the guest's sshd accepting logins and the play noticing it,
#   per-call task time: pbs_gate / pbs_upgrade (check mode) / pbs_health vs ansible.builtin.command true (and raw).
# Usage: bench/patch_cycle.sh   (builds what is missing, starts the lab, resets it; stops the VM at the end)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out="${PBS_PATCH_OUT:-$top/build/bench}"
mkdir -p "$out"
export PATH="$top/.venv/bin:$PATH"
# Its own lab instance (like lab/bench.sh), so a lab started by hand is not reset or stopped. One VM at a time.
export PBS_PATCH_LAB_STATE="${PBS_PATCH_LAB_STATE:-$top/lab/.state/patch-bench}"
export PBS_PATCH_LAB_SSH_PORT="${PBS_PATCH_LAB_SSH_PORT:-2225}"
prober_pid=""
cleanup() {
  if [ -n "$prober_pid" ]; then kill "$prober_pid" 2>/dev/null || true; fi
  "$top/lab/labctl" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$top/scripts/setup.sh" >/dev/null
if ! { cmake --preset release >"$out/cmake.log" 2>&1 && cmake --build --preset release >>"$out/cmake.log" 2>&1; }; then
  tail -30 "$out/cmake.log"; exit 1
fi
lab/labctl build >/dev/null
lab/labctl start
lab/labctl reset

port="$PBS_PATCH_LAB_SSH_PORT"
key="${PBS_PATCH_LAB_CACHE:-/var/cache/pbs-patch-lab}/ssh/id_ed25519"
rm -f "$out"/probe.jsonl "$out"/cycle-tasks.json "$out"/modules-tasks.json "$out"/report.json
export ANSIBLE_CALLBACK_PLUGINS="$top/bench/callback_plugins" ANSIBLE_CALLBACKS_ENABLED=task_timer

echo "bench: patch cycle on the lab VM (real upgrade and reboot) ..."
python3 "$top/bench/ssh_prober.py" --port "$port" --key "$key" --out "$out/probe.jsonl" &
prober_pid=$!
t0=$(date +%s.%N)
PBS_PATCH_TASK_TIMES="$out/cycle-tasks.json" ansible-playbook -i lab/inventory.yml playbooks/patch_pbs.yml \
  -e "pbs_patch_report_path=$out/report.json" >"$out/cycle.log" 2>&1 || { tail -40 "$out/cycle.log"; exit 1; }
t1=$(date +%s.%N)
kill "$prober_pid" 2>/dev/null || true; prober_pid=""

echo "bench: module task times on the same guest ..."
PBS_PATCH_TASK_TIMES="$out/modules-tasks.json" ansible-playbook -i lab/inventory.yml bench/module_cost.yml \
  -e bench_repeat=3 >"$out/modules.log" 2>&1 || { tail -40 "$out/modules.log"; exit 1; }

python3 - "$out" "$t0" "$t1" <<'PY'
import json, sys
from pathlib import Path
out, t0, t1 = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
r = json.loads((out / "report.json").read_text())
t = r["timings"]
tasks = json.loads((out / "cycle-tasks.json").read_text())
probe = [json.loads(l) for l in (out / "probe.jsonl").read_text().splitlines() if l.strip()]
ev = {p["event"]: p["t"] for p in probe}

def task_end(prefix):
    m = [x for x in tasks if x["task"].endswith(prefix)]
    return m[-1]["end"] if m else None

print()
print("patch cycle (lab VM, TCG)                     seconds")
print("  total wall time (ansible-playbook)          %7.1f" % (t1 - t0))
print("  in the play: start to notify                %7.1f" % t["total_s"])
for k, label in (("gate_s", "gate (preflight + pbs_gate)"), ("upgrade_s", "upgrade (pbs_upgrade)"),
                 ("shutdown_s", "shutdown (qm reboot returns)"), ("boot_to_ssh_s", "boot to SSH banner"),
                 ("login_s", "banner to login (wait_for_connection)"), ("verify_s", "verify (pbs_health + agent)")):
    print("  %-42s %7.1f" % (label, t[k]))
print("  downtime (qm reboot to login)               %7.1f" % t["downtime_s"])
print("  packages changed                            %7d" % len(r["packages_changed"]))
banner_seen = task_end("Wait for the OpenSSH banner to come back (retries while PBS boots are expected)")
login_seen = task_end("Log in again")
if "login_ok" in ev and login_seen:
    print("  sshd accepts logins -> play notices (login) %7.1f" % (login_seen - ev["login_ok"]))
if "banner_up" in ev and banner_seen:
    print("  banner back -> play notices the banner      %7.1f" % (banner_seen - ev["banner_up"]))
if "banner_up" in ev and "login_ok" in ev:
    print("  banner back -> first login works (prober)   %7.1f" % (ev["login_ok"] - ev["banner_up"]))

mods = json.loads((out / "modules-tasks.json").read_text())
print()
print("task time per call on the guest (3 calls each; includes the commands each module runs)      seconds")
for x in mods:
    if x["task"].startswith("Bench "):
        print("  %-62s %6.2f" % (x["task"][len("Bench "):], (x["end"] - x["start"]) / 3))
print()
print("logs and raw data: %s" % out)
PY
