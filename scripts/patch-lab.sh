#!/usr/bin/env bash
# The README's main command: patch the lab's PBS VM end to end with the real playbook.
#   1. set-up (Debian packages, .venv), 2. build the module binaries, 3. build and start the lab VM,
#   4. start a local HTTP endpoint for the notification, 5. ansible-playbook playbooks/patch_pbs.yml,
#   6. print what happened and where the report is. The notification endpoint is stopped on exit, also on failure.
# Usage: scripts/patch-lab.sh [--check] [--keep] [--no-reset] [extra ansible-playbook args...]
#   --check     dry run: nothing changes in the guest, no reboot; lists what would be upgraded
#   --keep      leave the lab VM running afterwards (default: stop it; lab/labctl start brings it back)
#   --no-reset  do not reset the VM to its pristine snapshot first (default: reset, so upgrades are pending)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

check=0 keep=0 reset=1
extra=()
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    --keep) keep=1 ;;
    --no-reset) reset=0 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) extra+=("$a") ;;
  esac
done

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
out="${PBS_PATCH_OUT:-$top/build/patch-lab}"
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="$out/report-$stamp.json"
payloads="$out/notifications-$stamp.jsonl"
receiver_pid=""

cleanup() {
  rc=$?
  if [ -n "$receiver_pid" ] && kill -0 "$receiver_pid" 2>/dev/null; then
    kill "$receiver_pid" 2>/dev/null || true
    wait "$receiver_pid" 2>/dev/null || true
  fi
  if [ "$keep" -eq 0 ] && [ -x "$top/lab/labctl" ] && [ "${lab_started:-0}" -eq 1 ]; then
    echo "(stopping the lab VM; use --keep to leave it running)"
    "$top/lab/labctl" stop >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "1/6 Set-up: Debian packages and the project venv (installs only what is missing)"
"$top/scripts/setup.sh"
export PATH="$top/.venv/bin:$PATH"

say "2/6 Build the module binaries (static C++: pbs_gate, pbs_upgrade, pbs_health, pbs_window, pbs_lease -> plugins/modules)"
cmake --preset release >"$out/cmake-configure.log" 2>&1 || { tail -30 "$out/cmake-configure.log"; exit 1; }
cmake --build --preset release
for m in pbs_gate pbs_upgrade pbs_health pbs_window pbs_lease; do
  [ -x "plugins/modules/$m" ] || { echo "plugins/modules/$m was not built"; exit 1; }
done

say "3/6 The lab: a Debian 12 VM playing the PBS (\"pbs\"), and a qm stand-in playing Proxmox VE (\"pve\")"
lab/labctl build
lab_started=1
lab/labctl start
if [ "$reset" -eq 1 ]; then
  echo "resetting the VM to its pristine snapshot (packages pending upgrade)"
  lab/labctl reset
fi

say "4/6 A local HTTP endpoint to receive the notification (127.0.0.1, records to $payloads)"
portfile="$out/receiver-$stamp.port"
python3 "$top/tests/support/webhook_receiver.py" --out "$payloads" --port-file "$portfile" 2>"$out/receiver.log" &
receiver_pid=$!
for _ in $(seq 50); do [ -s "$portfile" ] && break; sleep 0.1; done
[ -s "$portfile" ] || { echo "the notification endpoint did not start (see $out/receiver.log)"; exit 1; }
url="http://127.0.0.1:$(cat "$portfile")/webhook"
rm -f "$portfile"

mode_args=()
[ "$check" -eq 1 ] && mode_args=(--check)
say "5/6 ansible-playbook -i lab/inventory.yml playbooks/patch_pbs.yml ${mode_args[*]:-}"
set +e
# The lab inventory sets the free-space gate to 2 GiB (its 4 GiB disk has about 3 GiB free).
ansible-playbook -i lab/inventory.yml playbooks/patch_pbs.yml "${mode_args[@]}" \
  -e "pbs_patch_notify_webhook_url=$url" -e "pbs_patch_report_path=$report" "${extra[@]}"
play_rc=$?
set -e

say "6/6 Summary"
python3 - "$report" "$payloads" "$play_rc" <<'PY'
import json, sys
from pathlib import Path
report, payloads, rc = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
posts = [json.loads(l) for l in payloads.read_text().splitlines() if l.strip()] if payloads.exists() else []
if not report.exists():
    print("The play failed before it wrote a report (rc %d): read the first red 'fatal' message above; it says" % rc)
    print("which check refused and what to do. Nothing is upgraded or rebooted before the gates pass.")
    sys.exit(0)
r = json.loads(report.read_text())
t = r.get("timings") or {}
if r.get("status") == "check_mode":
    would = r.get("packages_would_change") or []
    print("Check mode: nothing was changed in the guest and it was not rebooted.")
    print("Would change %d package(s):" % len(would))
    for p in would:
        print("  %-28s %s -> %s" % (p.get("name"), p.get("from") or "(new)", p.get("to") or "(removed)"))
elif r.get("status") == "patched":
    pk = r.get("packages_changed") or []
    print("PBS '%s' (VM %s) was patched, rebooted from Proxmox VE and verified." % (r.get("host"), r.get("vmid")))
    print("Packages changed: %d" % len(pk))
    for p in pk:
        print("  %-28s %s -> %s" % (p.get("name"), p.get("from") or "(new)", p.get("to") or "(removed)"))
    print("Kernel: %s | root free: %s GiB | reboot-required flag after upgrade: %s"
          % (r.get("kernel"), r.get("root_free_gb"), r.get("reboot_required")))
    print("Boot id: %s -> %s" % (r.get("boot_id_before"), r.get("boot_id_after")))
    print("Healthy: %s | guest agent: %s" % ((r.get("health_summary") or {}).get("healthy"),
          "answered" if (r.get("guest_agent") or {}).get("available") else "not available (not an error)"))
    print("Timings: gate %ss, upgrade %ss, downtime %ss (shutdown %ss, boot to SSH %ss, login %ss), verify %ss, total %ss"
          % tuple(t.get(k) for k in ("gate_s", "upgrade_s", "downtime_s", "shutdown_s", "boot_to_ssh_s", "login_s",
                                     "verify_s", "total_s")))
else:
    print("The run FAILED in step '%s': %s" % (r.get("step"), r.get("msg")))
print("Report (JSON): %s" % report)
print("Notifications received by the local endpoint: %d (%s)" % (len(posts), payloads))
PY
if [ "$play_rc" -eq 0 ]; then
  echo "Done. Inspect the guest with: lab/labctl start && lab/labctl ssh   (the VM is stopped unless --keep)"
else
  echo "The playbook failed (rc $play_rc). The message above says which step refused and what was last seen."
fi
(exit "$play_rc")  # the run's status: the EXIT trap ends the script with it (a bare exit here confuses shellcheck 0.9)
