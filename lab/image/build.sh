#!/usr/bin/env bash
# Stage 2 of the lab image (run by `lab/labctl build`, as root): from the cached debootstrap rootfs (stage1.sh)
# to OUTDIR/{base.qcow2,vmlinuz,initrd.img,facts/}. No loop devices, no network: mkfs.ext4 -d, then qemu-img.
# One recipe for every guest: PROFILE (lab/image/guests/<guest>.conf) gives the suite, the PBS stand-in's
# versions, the APT sources format and the unit directory.
# Usage: build.sh STAGE1_DIR AUTHORIZED_PUBKEY_FILE OUTDIR PROFILE
set -euo pipefail
stage1=${1:?} pubkey=${2:?} out=${3:?} profile=${4:?}
suite='' pbs_installed='' pbs_pending='' apt_sources='' unit_dir=''
# shellcheck source=guests/debian13.conf
. "$profile"
: "${suite:?} ${pbs_installed:?} ${pbs_pending:?} ${apt_sources:?} ${unit_dir:?}"
here=$(cd "$(dirname "$0")" && pwd)
tmp="$out.tmp.$$"
root="$tmp/rootfs"
cleanup() {
  mountpoint -q "$root/proc" 2>/dev/null && umount "$root/proc"
  rm -rf "$tmp"
}
trap cleanup EXIT
rm -rf "$tmp"; mkdir -p "$tmp"
cp -a "$stage1" "$root"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

# --- local APT repositories with the lab's packages ----------------------------------------------------
# /srv/lab-repo/debian (suite SUITE, component main) and /srv/lab-repo/proxmox (component pbs-no-subscription)
# are laid out like the archives a real PBS uses (dists/, pool/), so that the guest's sources name a suite and
# a component as on a real host; base/ is only installed, the fault-* repositories are flat ones.
"$here/debs.sh" "$tmp/debs" "$pbs_installed" "$pbs_pending" "$unit_dir"
repo="$root/srv/lab-repo"
mkdir -p "$repo"
cp -r "$tmp/debs/base" "$tmp/debs/fault-hang" "$tmp/debs/fault-failonce" "$repo/"
mount -t proc proc "$root/proc"
archive() { # NAME COMPONENT ORIGIN LABEL
  mkdir -p "$repo/$1/pool/$2" "$repo/$1/dists/$suite/$2/binary-amd64"
  cp "$tmp/debs/$1/"*.deb "$repo/$1/pool/$2/"
  in_root sh -ec "cd /srv/lab-repo/$1
    apt-ftparchive packages pool/$2 > dists/$suite/$2/binary-amd64/Packages
    apt-ftparchive -o APT::FTPArchive::Release::Origin='$3' -o APT::FTPArchive::Release::Label='$4' \\
      -o APT::FTPArchive::Release::Suite=$suite -o APT::FTPArchive::Release::Codename=$suite \\
      -o APT::FTPArchive::Release::Components=$2 -o APT::FTPArchive::Release::Architectures=amd64 \\
      release dists/$suite > /tmp/Release && mv /tmp/Release dists/$suite/Release"
}
archive debian main Debian Debian
archive proxmox pbs-no-subscription Proxmox "Proxmox Backup Server Debian Repository"
for d in fault-hang fault-failonce; do
  in_root sh -ec "cd /srv/lab-repo/$d; apt-ftparchive packages . > Packages; apt-ftparchive release . > Release"
done

# --- guest files (lab helpers), host name, network, ssh ----------------------------------------------
cp -a "$here/guest/." "$root/"
echo pbs > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpbs.lab.local pbs\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nUseHostname=false\n' \
  > "$root/etc/systemd/network/10-lab.network"
echo "nameserver 10.0.2.3" > "$root/etc/resolv.conf"
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
in_root systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1
# Nothing may take the dpkg lock behind the tests' back, and no timer should wake up mid-test.
for t in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer dpkg-db-backup.timer; do
  in_root systemctl mask "$t" >/dev/null 2>&1 || true
done
# Boot speed under emulation (every unit costs CPU time that sshd waits for): units a PBS test never needs.
# The second line are units that Debian 13 (systemd 257) added or runs at every boot (masking a unit a release
# does not have is harmless).
for u in e2scrub_reap.service systemd-pstore.service systemd-binfmt.service dev-hugepages.mount sys-kernel-debug.mount \
         sys-kernel-tracing.mount sys-fs-fuse-connections.mount sys-kernel-config.mount \
         modprobe@drm.service kmod-static-nodes.service systemd-network-generator.service \
         systemd-networkd-persistent-storage.service systemd-udev-load-credentials.service \
         systemd-sysext.socket systemd-creds.socket; do
  in_root systemctl mask "$u" >/dev/null 2>&1 || true
done
# A small initramfs (only what the direct kernel boot needs to find /dev/vda; ext4 is built in).
printf 'virtio_pci\nvirtio_blk\n' >> "$root/etc/initramfs-tools/modules"
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
printf 'UseDNS no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n' \
  > "$root/etc/ssh/sshd_config.d/lab.conf"
# sshd starts without its config self-test (an extra sshd run costs ~0.5 s of emulated CPU at every boot)
mkdir -p "$root/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\n' > "$root/etc/systemd/system/ssh.service.d/lab-fast-start.conf"
install -d -m 700 "$root/root/.ssh"
install -m 600 "$pubkey" "$root/root/.ssh/authorized_keys"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n/srv/datastore/store1 /mnt/datastore/store1 none bind,nofail 0 0\n' \
  > "$root/etc/fstab"
rm -f "$root/etc/machine-id"; in_root systemd-machine-id-setup >/dev/null

# --- PBS stand-in package (the profile's pbs_installed) and the other base packages, then the datastore -
in_root sh -ec 'dpkg -i /srv/lab-repo/base/*.deb >/dev/null'
# Debian's real unattended-upgrades (downloaded in stage 1), installed but disabled: the `unattended-upgrades`
# knob enables it, and its shutdown helper then runs as on a real host. Installing it in the running guest
# would cost minutes of emulated CPU in every scenario that wants it.
in_root sh -ec 'dpkg -i /srv/lab-debian/*.deb >/dev/null 2>&1; systemctl disable unattended-upgrades.service >/dev/null 2>&1'
install -d -o 34 -g 34 "$root/srv/datastore/store1" "$root/srv/datastore/store1/.chunks" "$root/mnt/datastore/store1"
printf 'datastore: store1\n\tcomment lab datastore\n\tgc-schedule daily\n\tpath /mnt/datastore/store1\n' \
  > "$root/etc/proxmox-backup/datastore.cfg"
# The guest's admin changed this conffile: an upgrade must keep it (--force-confold).
echo "setting = local  # changed by the guest's admin" >> "$root/etc/pbs-lab/lab.conf"

# --- APT: only the lab repositories, never the Internet -------------------------------------------------
# The sources a PBS of this release has, pointing at the local archives ("Trusted: yes" / [trusted=yes]
# instead of a Signed-By keyring: the lab's repositories are not signed).
rm -f "$root/etc/apt/sources.list" "$root/etc/apt/sources.list.d/"*
case "$apt_sources" in
  deb822)  # PBS 4 on Debian 13
    printf 'Types: deb\nURIs: file:/srv/lab-repo/debian\nSuites: %s\nComponents: main\nTrusted: yes\n' "$suite" \
      > "$root/etc/apt/sources.list.d/debian.sources"
    printf 'Types: deb\nURIs: file:/srv/lab-repo/proxmox\nSuites: %s\nComponents: pbs-no-subscription\nTrusted: yes\n' \
      "$suite" > "$root/etc/apt/sources.list.d/proxmox.sources" ;;
  one-line)  # PBS 3 on Debian 12
    echo "deb [trusted=yes] file:/srv/lab-repo/debian $suite main" > "$root/etc/apt/sources.list"
    echo "deb [trusted=yes] file:/srv/lab-repo/proxmox $suite pbs-no-subscription" \
      > "$root/etc/apt/sources.list.d/pbs-no-subscription.list" ;;
  *) echo "build.sh: unknown apt_sources '$apt_sources' in $profile" >&2; exit 1 ;;
esac
rm -rf "$root/var/lib/apt/lists/"*
in_root apt-get update -q >/dev/null
in_root apt-get clean
# What this guest is, for lab/labctl (guest.json), the tests and Molecule: recorded, not assumed.
mkdir -p "$tmp/facts"
cp "$root/etc/os-release" "$root/etc/debian_version" "$tmp/facts/"
# The ${...} are dpkg-query's format fields, not shell expansions.
# shellcheck disable=SC2016
in_root dpkg-query -W -f='${Package}\t${Version}\n' > "$tmp/facts/dpkg.tsv"
in_root apt-get -s -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade \
  > "$tmp/facts/apt-sim-dist-upgrade.txt"
in_root sh -ec 'update-initramfs -u -k all >/dev/null 2>&1; python3 -m compileall -q /usr/lib/x86_64-linux-gnu/proxmox-backup >/dev/null || true'
umount "$root/proc"

# /etc and /var are up to date with /usr: no ldconfig, catalog or hwdb rebuild at the first boot of a disk
# (ConditionNeedsUpdate, as systemd-update-done.service records it).
touch -d "@$(stat -c %Y "$root/usr")" "$root/usr"  # whole seconds: what mkfs.ext4 -d keeps, what the files say
for d in etc var; do
  printf '# This file was created by systemd-update-done. The timestamp below is the\n# modification time of /usr for which the most recent updates of /etc and /var have been\n# applied. See man:systemd-update-done.service(8) for details.\nTIMESTAMP_NSEC=%s\n' \
    "$(stat -c %Y "$root/usr")000000000" > "$root/$d/.updated"
  touch -r "$root/usr" "$root/$d/.updated"
done

# --- kernel for direct boot, then the disk image --------------------------------------------------------
kver=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
cp "$root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$tmp/initrd.img"
echo "$kver" > "$tmp/kernel-version"
mkfs.ext4 -q -F -L root -d "$root" "$tmp/disk.raw" 4G
qemu-img convert -O qcow2 "$tmp/disk.raw" "$tmp/base.qcow2"
rm -rf "$tmp/disk.raw" "$root" "$tmp/debs"
mv "$tmp" "$out"
trap - EXIT
