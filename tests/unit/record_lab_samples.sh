#!/usr/bin/env bash
# Records the unit tests' per-guest samples (tests/unit/fixtures/*_lab_<suite>.*) on a running lab VM, with
# the commands and options the modules use. Run as root with the lab started (lab/labctl [--guest G] start);
# it resets the VM to its pristine snapshot before and after. Usage: tests/unit/record_lab_samples.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
labctl="$top/lab/labctl"
fx="$top/tests/unit/fixtures"
suite=$("$labctl" guest | python3 -c 'import json,sys; print(json.load(sys.stdin)["suite"])')
g() { "$labctl" ssh -- "$@"; }
conf='-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o Dpkg::Use-Pty=0'
# The ${...} are dpkg-query's format fields, not shell expansions.
# shellcheck disable=SC2016
dpkg_fmt='${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\n'
trap '"$labctl" reset >/dev/null 2>&1 || true' EXIT
"$labctl" reset >/dev/null

# pbs_upgrade: simulation, then a real run with one package held, dpkg's state before and after
g "apt-get -s $conf dist-upgrade" > "$fx/apt_sim_lab_$suite.txt"
g "apt-mark hold pbs-lab-kernel >/dev/null; apt-get -s $conf dist-upgrade" > "$fx/apt_sim_held_lab_$suite.txt"
g "dpkg-query -W -f='$dpkg_fmt'" > "$fx/dpkg_state_lab_${suite}_before.tsv"
g "apt-get -y $conf dist-upgrade" > "$fx/apt_run_held_lab_$suite.txt"
g "dpkg-query -W -f='$dpkg_fmt'" > "$fx/dpkg_state_lab_${suite}_after.tsv"
"$labctl" reset >/dev/null

# pbs_gate: dpkg --audit with a half-configured package; /proc/locks with a live holder of the dpkg locks
"$labctl" fault dpkg-interrupted on
g "dpkg --audit; echo \"(exit \$?)\"" > "$fx/dpkg_audit_lab_$suite.txt" || true
"$labctl" fault dpkg-interrupted off
"$labctl" fault dpkg-lock on >/dev/null
# Single-quoted: the $(...) run in the guest's shell (over ssh), not here.
# shellcheck disable=SC2016
g 'echo "# holder pid $(cat /run/pbs-lab-hold-lock.pid), inodes: lock-frontend $(stat -c %i /var/lib/dpkg/lock-frontend)' \
    'lock $(stat -c %i /var/lib/dpkg/lock), device $(stat -c %D /var/lib/dpkg/lock)"; cat /proc/locks' \
  > "$fx/proc_locks_lab_$suite.txt"
"$labctl" fault dpkg-lock off

# pbs_health: systemctl show of the PBS units healthy, of a failing proxy, and of failed/idle/masked/missing units
props=Id,LoadState,ActiveState,SubState,UnitFileState
g "systemctl show -p $props -- proxmox-backup proxmox-backup-proxy" > "$fx/systemctl_show_pbs_healthy_lab_$suite.txt"
"$labctl" fault proxy-fails on
# the proxy in its restart loop (Restart=on-failure), caught while it starts again
g "systemctl show -p $props -- proxmox-backup proxmox-backup-proxy" > "$fx/systemctl_show_pbs_proxy_failed_lab_$suite.txt"
# Single-quoted: $u is the guest shell's loop variable (over ssh), not this script's.
# shellcheck disable=SC2016
g 'for u in failed idle; do printf "[Unit]\nDescription=lab %s\n[Service]\nExecStart=/bin/false\n[Install]\nWantedBy=multi-user.target\n" $u > /etc/systemd/system/pbsrec-$u.service; done
   systemctl mask -q pbsrec-masked.service; systemctl daemon-reload
   systemctl enable -q pbsrec-failed; systemctl start pbsrec-failed || true'
g "systemctl show -p $props -- proxmox-backup pbsrec-failed pbsrec-idle pbsrec-masked pbs-nosuch" \
  > "$fx/systemctl_show_states_lab_$suite.txt"

# pbs_window: systemd-analyze calendar (UTC and Europe/Berlin), as lib/src/calendar.cpp runs it
g "systemd-analyze calendar --iterations=3 --base-time=@1795770000 'mon..fri 02:00' 'hourly' '*:0/15' '2,22:30' '2015-10-21'" \
  > "$fx/systemd_calendar_lab_$suite.txt"
g "TZ=Europe/Berlin systemd-analyze calendar --iterations=2 --base-time=@1795770000 'mon..fri 02:00' 'sat,sun 4:00'" \
  > "$fx/systemd_calendar_berlin_lab_$suite.txt"

# pbs_health: the PBS stand-in's versions (PBS 3 or 4) and the kernels in /boot
g "proxmox-backup-manager versions --output-format json" > "$fx/pbs_versions_lab_$suite.json"
g 'uname -r; ls /boot' > "$fx/boot_lab_$suite.txt"
echo "recorded the $suite samples in $fx"
