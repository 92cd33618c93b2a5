#!/usr/bin/env bash
# Builds the lab's Debian packages with dpkg-deb into OUTDIR:
#   OUTDIR/base/            versions installed in the image
#   OUTDIR/debian/          pending upgrades from "Debian" (the guest's Debian source: pbs-lab-conffile)
#   OUTDIR/proxmox/         pending upgrades from "Proxmox" (pbs-no-subscription: proxmox-backup-server, pbs-lab-kernel)
#   OUTDIR/fault-hang/      pbs-lab-hang 1.1-1, postinst hangs forever    (fault knob, not a source by default)
#   OUTDIR/fault-failonce/  pbs-lab-failonce 1.1-1, postinst fails once   (fault knob, not a source by default)
# Usage: debs.sh OUTDIR PBS_INSTALLED PBS_PENDING UNIT_DIR   (from the guest profile, lab/image/guests/)
set -euo pipefail
out=${1:?usage: debs.sh OUTDIR PBS_INSTALLED PBS_PENDING UNIT_DIR}
pbs_installed=${2:?} pbs_pending=${3:?} unit_dir=${4:?}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"/{base,debian,proxmox,fault-hang,fault-failonce}
export SOURCE_DATE_EPOCH=1700000000

# control_file DIR PACKAGE VERSION ARCH DEPENDS DESCRIPTION
control() {
  mkdir -p "$1/DEBIAN"
  {
    echo "Package: $2"
    echo "Version: $3"
    echo "Architecture: $4"
    echo "Maintainer: pbs_patch lab <lab@localhost>"
    [ -n "$5" ] && echo "Depends: $5"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Description: $6"
    echo " Built by the pbs_patch lab (lab/image/debs.sh); not a Proxmox package."
  } > "$1/DEBIAN/control"
}
script() { # script DIR NAME  (body on stdin)
  { echo '#!/bin/sh'; echo 'set -e'; cat; } > "$1/DEBIAN/$2"
  chmod 755 "$1/DEBIAN/$2"
}
build() { # build DIR DESTDIR
  # Reproducible, but a different mtime per version: Python's .pyc check (mtime+size) must see an upgrade.
  local v; v=$(sed -n 's/^Version: //p' "$1/DEBIAN/control")
  local t=$(( SOURCE_DATE_EPOCH + $(printf '%s' "$v" | cksum | cut -d' ' -f1) % 100000 ))
  find "$1" -exec touch -h -d @"$t" {} +
  SOURCE_DATE_EPOCH=$t dpkg-deb --root-owner-group -Zxz --build "$1" "$2" >/dev/null
}

# --- proxmox-backup-server ----------------------------------------------------------------------------
pbs() { # pbs VERSION DEST
  local d="$work/pbs-$1" lib=usr/lib/x86_64-linux-gnu/proxmox-backup
  mkdir -p "$d/$lib" "$d/usr/sbin" "$d$unit_dir" "$d/usr/share/doc/proxmox-backup-server"
  sed "s/@PKG_VERSION@/$1/" "$here/pbs/pbs_lab_common.py" > "$d/$lib/pbs_lab_common.py"
  install -m 755 "$here/pbs/pbs_lab_daemon.py" "$d/$lib/proxmox-backup-api"
  install -m 755 "$here/pbs/pbs_lab_daemon.py" "$d/$lib/proxmox-backup-proxy"
  install -m 755 "$here/pbs/proxmox-backup-manager" "$d/usr/sbin/proxmox-backup-manager"
  install -m 644 "$here"/pbs/units/* "$d$unit_dir/"
  control "$d" proxmox-backup-server "$1" amd64 "python3, openssl" \
    "Proxmox Backup Server daemon with tools and GUI (lab stand-in)"
  script "$d" postinst <<'PI'
case "$1" in
  configure)
    mkdir -p /etc/proxmox-backup /var/log/proxmox-backup/tasks
    chown backup:backup /var/log/proxmox-backup /var/log/proxmox-backup/tasks
    [ -e /var/log/proxmox-backup/tasks/active ] || install -o backup -g backup -m 644 /dev/null /var/log/proxmox-backup/tasks/active
    if [ ! -e /etc/proxmox-backup/proxy.pem ]; then
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$(hostname)" \
        -keyout /etc/proxmox-backup/proxy.key -out /etc/proxmox-backup/proxy.pem 2>/dev/null
      chown root:backup /etc/proxmox-backup/proxy.key /etc/proxmox-backup/proxy.pem
      chmod 640 /etc/proxmox-backup/proxy.key
    fi
    if [ -z "$2" ]; then
      systemctl enable proxmox-backup.service proxmox-backup-proxy.service proxmox-backup-banner.service \
        proxmox-backup-daily-update.timer >/dev/null 2>&1 || true
    fi
    # modeled after the real package (dh_systemd_start output)
    if [ -d /run/systemd/system ]; then
      systemctl --system daemon-reload >/dev/null || true
      if [ -n "$2" ]; then _dh_action=try-reload-or-restart; else _dh_action=start; fi
      deb-systemd-invoke $_dh_action proxmox-backup.service proxmox-backup-proxy.service >/dev/null || true
    fi
    ;;
esac
exit 0
PI
  script "$d" prerm <<'PR'
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop proxmox-backup-proxy.service proxmox-backup.service >/dev/null 2>&1 || true
fi
exit 0
PR
  build "$d" "$2"
}
pbs "$pbs_installed" "$out/base"
pbs "$pbs_pending" "$out/proxmox"

# --- pbs-lab-conffile: a conffile the image modifies locally; 1.1-1 ships a new default ---------------
conffile() { # VERSION SETTING DEST
  local d="$work/conffile-$1"
  mkdir -p "$d/etc/pbs-lab"
  printf '# pbs_patch lab conffile (package default %s)\nsetting = %s\n' "$1" "$2" > "$d/etc/pbs-lab/lab.conf"
  control "$d" pbs-lab-conffile "$1" all "" "lab package with a conffile (proves --force-confold)"
  echo /etc/pbs-lab/lab.conf > "$d/DEBIAN/conffiles"
  build "$d" "$3"
}
conffile 1.0-1 1 "$out/base"
conffile 1.1-1 2 "$out/debian"

# --- pbs-lab-kernel: kernel-like, its postinst asks for a reboot (no kernel is really installed) -----
kernel() { # VERSION DEST
  local d="$work/kernel-$1"
  mkdir -p "$d/usr/share/doc/pbs-lab-kernel"
  echo "lab kernel-like package $1" > "$d/usr/share/doc/pbs-lab-kernel/README"
  control "$d" pbs-lab-kernel "$1" all "" "kernel-like lab package: its postinst writes /var/run/reboot-required"
  script "$d" postinst <<'PI'
if [ "$1" = configure ] && [ -n "$2" ]; then
  echo "*** System restart required ***" > /var/run/reboot-required
  echo pbs-lab-kernel >> /var/run/reboot-required.pkgs
fi
exit 0
PI
  build "$d" "$2"
}
kernel 1.0-1 "$out/base"
kernel 1.1-1 "$out/proxmox"

# --- fault packages --------------------------------------------------------------------------------
simple() { # NAME VERSION DEST DESCRIPTION  (postinst body on stdin, may be empty)
  local d="$work/$1-$2"
  mkdir -p "$d/usr/share/doc/$1"
  echo "$4" > "$d/usr/share/doc/$1/README"
  control "$d" "$1" "$2" all "" "$4"
  script "$d" postinst
  build "$d" "$3"
}
echo 'exit 0' | simple pbs-lab-hang 1.0-1 "$out/base" "lab fault package (1.0-1 is harmless)"
simple pbs-lab-hang 1.1-1 "$out/fault-hang" "lab fault package: postinst hangs forever" <<'PI'
echo "pbs-lab-hang: postinst hangs on purpose (lab fault knob hang-postinst)" >&2
while :; do sleep 3600; done
PI
echo 'exit 0' | simple pbs-lab-failonce 1.0-1 "$out/base" "lab fault package (1.0-1 is harmless)"
simple pbs-lab-failonce 1.1-1 "$out/fault-failonce" "lab fault package: postinst fails the first time" <<'PI'
if [ "$1" = configure ] && [ ! -e /var/lib/pbs-lab/failonce.failed ]; then
  mkdir -p /var/lib/pbs-lab
  touch /var/lib/pbs-lab/failonce.failed
  echo "pbs-lab-failonce: postinst fails once on purpose (lab fault knob)" >&2
  exit 1
fi
exit 0
PI
