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
include=systemd-sysv,udev,dbus,openssh-server,openssh-sftp-server,qemu-guest-agent,util-linux-extra,linux-image-cloud-amd64,initramfs-tools,iproute2,python3,python3-apt,sudo,procps,psmisc,lsof,ca-certificates,apt-utils
tmp="$out.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror"
# Nothing of the host's debootstrap run may leak into the image.
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/debootstrap" 2>/dev/null || true
mv "$tmp" "$out"
trap - EXIT
