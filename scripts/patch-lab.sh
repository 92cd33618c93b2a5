#!/usr/bin/env bash
# The README's main command: patch the lab's PBS VM end to end with the real playbook.
#   1. set-up (Debian packages, .venv), 2. build the module binaries, 3. build and start the lab VM,
#   4. start a local HTTP endpoint and a local SMTP server (STARTTLS, AUTH) for the notifications,
#   5. ansible-playbook playbooks/patch_pbs.yml, 6. print what happened and where the report and the mail are.
#   Both endpoints are stopped on exit, also on failure.
# Usage: scripts/patch-lab.sh [--guest G] [--check] [--keep] [--no-reset] [extra ansible-playbook args...]
#   --guest G   the lab guest: debian13 (default: Debian 13 with a PBS 4 stand-in) or debian12 (Debian 12, PBS 3)
#   --check     dry run: nothing changes in the guest, no reboot; lists what would be upgraded
#   --keep      leave the lab VM running afterwards (default: stop it; lab/labctl start brings it back)
#   --no-reset  do not reset the VM to its pristine snapshot first (default: reset, so upgrades are pending)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

check=0 keep=0 reset=1
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --keep) keep=1 ;;
    --no-reset) reset=0 ;;
    --guest) [ $# -ge 2 ] || { echo "--guest needs a value (debian13, debian12)" >&2; exit 2; }
             export PBS_PATCH_LAB_GUEST=$2; shift ;;
    --guest=*) export PBS_PATCH_LAB_GUEST=${1#--guest=} ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
# The lab instance keeps the guest of its disk unless one is asked for; the README's command means the default.
export PBS_PATCH_LAB_GUEST=${PBS_PATCH_LAB_GUEST:-debian13}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
out="${PBS_PATCH_OUT:-$top/build/patch-lab}"
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="$out/report-$stamp.json"
payloads="$out/notifications-$stamp.jsonl"
mailbox="$out/mail-$stamp"
receiver_pid=""
smtp_pid=""

cleanup() {
  rc=$?
  for pid in "$receiver_pid" "$smtp_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
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

say "2/6 Build the module binaries (static C++: pbs_gate, pbs_upgrade, pbs_health, pbs_window, pbs_lease, pbs_quiesce, pve_cluster -> plugins/modules)"
cmake --preset release >"$out/cmake-configure.log" 2>&1 || { tail -30 "$out/cmake-configure.log"; exit 1; }
cmake --build --preset release
for m in pbs_gate pbs_upgrade pbs_health pbs_window pbs_lease pbs_quiesce pve_cluster; do
  [ -x "plugins/modules/$m" ] || { echo "plugins/modules/$m was not built"; exit 1; }
done

lab/labctl guest --list >/dev/null  # an unknown --guest fails here, before anything is built
say "3/6 The lab: guest $PBS_PATCH_LAB_GUEST (a Debian VM with a PBS stand-in) playing the PBS (\"pbs\"), and a qm stand-in playing Proxmox VE (\"pve\")"
lab/labctl build
if lab/labctl status >/dev/null 2>&1 \
   && [ "$(lab/labctl status | sed -n 's/^guest: \([^ ]*\).*/\1/p')" != "$PBS_PATCH_LAB_GUEST" ]; then
  echo "the lab VM runs another guest: stopping it to start $PBS_PATCH_LAB_GUEST"
  lab/labctl stop
fi
lab_started=1
lab/labctl start
lab/labctl guest | python3 -c 'import json,sys; i=json.load(sys.stdin)
print("guest %s: %s, proxmox-backup-server %s installed, %s pending" % (i["guest"], i["pretty_name"], i["pbs"]["installed"], i["pbs"]["pending"]))'
if [ "$reset" -eq 1 ]; then
  echo "resetting the VM to its pristine snapshot (packages pending upgrade)"
  lab/labctl reset
fi

say "4/6 Local endpoints for the notifications: HTTP (records to $payloads), SMTP with STARTTLS and AUTH ($mailbox)"
portfile="$out/receiver-$stamp.port"
python3 "$top/tests/support/webhook_receiver.py" --out "$payloads" --port-file "$portfile" 2>"$out/receiver.log" &
receiver_pid=$!
for _ in $(seq 50); do [ -s "$portfile" ] && break; sleep 0.1; done
[ -s "$portfile" ] || { echo "the notification endpoint did not start (see $out/receiver.log)"; exit 1; }
url="http://127.0.0.1:$(cat "$portfile")/webhook"
rm -f "$portfile"
# The lab's mail relay: tests/support/smtp_receiver.py (aiosmtpd), with a password made for this run only.
mkdir -p "$mailbox"
( umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(18))' > "$mailbox/password" )
"$top/.venv/bin/python" "$top/tests/support/smtp_receiver.py" --out "$mailbox" --user pbs-lab \
  --password-file "$mailbox/password" --port-file "$mailbox/port" 2>"$out/smtp.log" &
smtp_pid=$!
for _ in $(seq 100); do [ -s "$mailbox/port" ] && break; sleep 0.1; done
[ -s "$mailbox/port" ] || { echo "the SMTP server did not start (see $out/smtp.log)"; exit 1; }
mail_vars="$mailbox/vars.json"
( umask 077; python3 - "$mailbox" > "$mail_vars" <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
print(json.dumps({"pbs_patch_notify_email_host": "127.0.0.1", "pbs_patch_notify_email_port": int((d / "port").read_text()),
                  "pbs_patch_notify_email_username": "pbs-lab", "pbs_patch_notify_email_password": (d / "password").read_text().strip(),
                  "pbs_patch_notify_email_from": "PBS patching (lab) <pbs-patch@lab.example>",
                  "pbs_patch_notify_email_to": ["backup-admins@lab.example"]}))
PY
)

mode_args=()
[ "$check" -eq 1 ] && mode_args=(--check)
say "5/6 ansible-playbook -i lab/inventory.yml playbooks/patch_pbs.yml ${mode_args[*]:-}"
set +e
# The lab inventory sets the free-space gate to 2 GiB (its 4 GiB disk has about 3 GiB free).
ansible-playbook -i lab/inventory.yml playbooks/patch_pbs.yml "${mode_args[@]}" \
  -e "pbs_patch_notify_webhook_url=$url" -e "pbs_patch_report_path=$report" -e "@$mail_vars" "${extra[@]}"
play_rc=$?
set -e

say "6/6 Summary"
python3 - "$report" "$payloads" "$play_rc" "$mailbox" <<'PY'
import json, sys
from pathlib import Path
report, payloads, rc, mailbox = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
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
mails = sorted(mailbox.glob("*.eml"))
print("Mails received by the local SMTP server: %d%s" % (len(mails), (" (%s)" % ", ".join(map(str, mails))) if mails else ""))
if mails:
    print("  see one as a picture: scripts/render_mail.py %s mail.png" % mails[-1])
PY
if [ "$play_rc" -eq 0 ]; then
  echo "Done. Inspect the guest with: lab/labctl start && lab/labctl ssh   (the VM is stopped unless --keep)"
else
  echo "The playbook failed (rc $play_rc). The message above says which step refused and what was last seen."
fi
(exit "$play_rc")  # the run's status: the EXIT trap ends the script with it (a bare exit here confuses shellcheck 0.9)
