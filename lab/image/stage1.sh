#!/usr/bin/env bash
# Stage 1 of the lab image: a Debian rootfs of SUITE (bookworm, trixie) from Debian's archive (debootstrap),
# cached as a directory under the lab cache, keyed by a hash of this file and the suite.
# Usage: stage1.sh OUTDIR SUITE   (OUTDIR must not exist yet)
set -euo pipefail
out=${1:?usage: stage1.sh OUTDIR SUITE}
suite=${2:?usage: stage1.sh OUTDIR SUITE}
mirror=${PBS_PATCH_LAB_MIRROR:-http://deb.debian.org/debian}
# The same package names exist in bookworm and trixie. util-linux-extra has hwclock, which the guest agent's
# guest-set-time runs (trixie's minbase lacks it). trixie's minbase no longer has e2fsprogs: not needed, the
# image is made on the host with mkfs.ext4 -d and the root filesystem is mounted rw by the kernel.
include=systemd-sysv,udev,dbus,openssh-server,openssh-sftp-server,qemu-guest-agent,util-linux-extra,linux-image-cloud-amd64,initramfs-tools,iproute2,python3,python-is-python3,python3-apt,sudo,procps,psmisc,lsof,ca-certificates,apt-utils
tmp="$out.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror"
# Nothing of the host's debootstrap run may leak into the image.
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/debootstrap" 2>/dev/null || true
# Debian's real unattended-upgrades and what it needs beyond this rootfs, as .debs for the guest, which has no
# network: the `unattended-upgrades` knob installs them with dpkg (lab/README.md). Not installed by default.
extra=(unattended-upgrades)
mount -t proc proc "$tmp/proc"
trap 'umount "$tmp/proc" 2>/dev/null; rm -rf "$tmp"' EXIT
chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C apt-get update -q >/dev/null
chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive \
  apt-get install -q -y --download-only --no-install-recommends "${extra[@]}" >/dev/null
umount "$tmp/proc"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/srv/lab-debian"
mv "$tmp/var/cache/apt/archives/"*.deb "$tmp/srv/lab-debian/"
rm -rf "$tmp/var/lib/apt/lists/"* 2>/dev/null || true
compgen -G "$tmp/srv/lab-debian/unattended-upgrades_*" >/dev/null || { echo "stage1: unattended-upgrades not downloaded" >&2; exit 1; }
mv "$tmp" "$out"
trap - EXIT
