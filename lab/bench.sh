#!/usr/bin/env bash
# Lab benchmark (prints figures; not a test), for each guest in turn. Targets under TCG on a 2-core machine:
# boot-to-SSH <= 20 s, qm reboot cycle <= 25 s, reset to pristine <= 5 s.
#   lab/bench.sh [--cached] [GUEST...]   GUEST: debian13, debian12 (default: every guest, one VM at a time)
#     cold (default): builds each image from nothing in a temporary cache (debootstrap from Debian's archive,
#                     one to three minutes more per guest), then measures; the temp cache is removed
#     --cached        uses the shared image cache ($PBS_PATCH_LAB_CACHE) and reports its recorded build time
# Runs its own lab instance (state lab/.state/bench, port 2224): a lab in use is not touched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=cold
guests=()
for a in "$@"; do
  case "$a" in
    --cached) mode=cached ;;
    -*) echo "usage: lab/bench.sh [--cached] [GUEST...]" >&2; exit 2 ;;
    *) guests+=("$a") ;;
  esac
done
[ ${#guests[@]} -gt 0 ] || mapfile -t guests < <("$here/labctl" guest --list | awk '{print $1}')
export PBS_PATCH_LAB_STATE="$here/.state/bench"
export PBS_PATCH_LAB_SSH_PORT=${PBS_PATCH_LAB_BENCH_PORT:-2224}
export PBS_PATCH_LAB_CACHE=${PBS_PATCH_LAB_CACHE:-/var/cache/pbs-patch-lab}
if [ "$mode" = cold ]; then
  PBS_PATCH_LAB_CACHE=$(mktemp -d /var/tmp/pbs-patch-lab-bench.XXXXXX)
fi
# one lab session at a time on this machine (shared with tests/lab)
exec 9>"${PBS_PATCH_LAB_SESSION_LOCK:-/run/lock/pbs-patch-lab-session.lock}"
flock -n 9 || { echo "bench: waiting for another lab session..." >&2; flock -w 3600 9; }
labctl="$here/labctl"
qm="$here/bin/qm"
cleanup() {
  "$labctl" stop >/dev/null 2>&1 || true
  "$labctl" destroy >/dev/null 2>&1 || true
  if [ "$mode" = cold ]; then rm -rf "$PBS_PATCH_LAB_CACHE"; fi
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
rss() { local p; p=$(cat "$PBS_PATCH_LAB_STATE/qemu.pid"); awk '/VmRSS/ { printf "%d MiB", $2/1024 }' "/proc/$p/status"; }
# CPU seconds the current QEMU process used so far: a figure of the guest's own cost, whatever else runs here
qemu_cpu() { local p; p=$(cat "$PBS_PATCH_LAB_STATE/qemu.pid"); awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$p/stat"; }
du_h() { du -sh "$@" 2>/dev/null | awk '{print $1}'; }

bench_guest() {
  export PBS_PATCH_LAB_GUEST=$1
  "$labctl" stop >/dev/null 2>&1 || true
  "$labctl" destroy >/dev/null 2>&1 || true
  local load0 t build_wall img build_fig cached_wall first_start boot rss_boot accel reboot_ret reboot rss_reboot
  local reset_run reset_stopped ping qga sshcmd rss_end info boot_cpu reboot_cpu
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  t=$(now); "$labctl" build >/dev/null 2>&1; build_wall=$(since "$t")
  t=$(now); img=$("$labctl" build 2>/dev/null); cached_wall=$(since "$t")
  if [ "$mode" = cold ]; then build_fig="$build_wall s cold (debootstrap + lab packages + disk image), $cached_wall s cached"
  else build_fig="$(cat "$img/build-seconds" 2>/dev/null || echo '?') s when built (cached now: ${build_wall} s)"; fi

  t=$(now); "$labctl" start --fresh >/dev/null 2>&1; first_start=$(since "$t")
  "$labctl" stop >/dev/null
  t=$(now); "$labctl" start >/dev/null 2>&1; boot=$(since "$t")
  boot_cpu=$(qemu_cpu)
  rss_boot=$(rss)
  accel=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); print(a[a.index("-accel")+1])' "$PBS_PATCH_LAB_STATE/qemu-argv.json")

  t=$(now); "$qm" reboot 100; reboot_ret=$(since "$t")
  "$labctl" wait-ssh --timeout 600
  reboot=$(since "$t")
  reboot_cpu=$(qemu_cpu)
  rss_reboot=$(rss)

  t=$(now); "$labctl" reset >/dev/null 2>&1; reset_run=$(since "$t")
  "$qm" shutdown 100 >/dev/null
  t=$(now); "$labctl" reset >/dev/null 2>&1; reset_stopped=$(since "$t")
  t=$(now); "$here/../.venv/bin/ansible" -i "$here/inventory.yml" pbs -m ansible.builtin.ping >/dev/null 2>&1 \
    && ping="$(since "$t") s" || ping="failed"
  t=$(now); "$qm" guest cmd 100 get-osinfo >/dev/null; qga=$(since "$t")
  t=$(now); "$labctl" ssh true; sshcmd=$(since "$t")
  rss_end=$(rss)
  info=$("$labctl" guest | python3 -c 'import json,sys; i=json.load(sys.stdin); p=i["packages"]
print("%s, kernel %s, apt %s, systemd %s, openssh %s, proxmox-backup-server %s -> %s" % (i["pretty_name"], i["kernel"],
      p["apt"], p["systemd"], p["openssh-server"], i["pbs"]["installed"], i["pbs"]["pending"]))')
  "$labctl" stop >/dev/null
  cat <<REPORT
pbs_patch lab benchmark, guest $1 ($(nproc) cores, -accel $accel, $(date -u +%FT%TZ), load average at start: $load0)
  $info
  image build ............................ $build_fig
  first start (new disk, boot, snapshot) . $first_start s
  boot to SSH login (cold boot) .......... $boot s, QEMU CPU $boot_cpu s          (target <= 20 s)
  qm reboot: returns after ............... $reboot_ret s
  qm reboot to SSH login ................. $reboot s, new QEMU's CPU $reboot_cpu s          (target <= 25 s)
  reset to pristine (VM running) ......... $reset_run s          (target <= 5 s)
  reset to pristine (VM stopped) ......... $reset_stopped s
  ansible -m ping (Python module) ........ $ping
  qm guest cmd get-osinfo ................ $qga s
  labctl ssh true ........................ $sshcmd s
  QEMU RSS: after boot $rss_boot, after reboot $rss_reboot, at the end $rss_end
  disk: image dir $(du_h "$img") (base.qcow2 $(du_h "$img/base.qcow2")), debootstrap cache $(du_h "$PBS_PATCH_LAB_CACHE"/"$(python3 -c "import sys; sys.path.insert(0, '$here'); from pbslab import common as C; print(C.stage1_name('$1'))")"), VM overlay with snapshot $(du_h "$PBS_PATCH_LAB_STATE/overlay.qcow2")

REPORT
}

for g in "${guests[@]}"; do bench_guest "$g"; done
