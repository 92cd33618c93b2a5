#!/usr/bin/env bash
# Stage 1 of the lab image: a Debian 12 rootfs from Debian's archive (debootstrap), cached as a directory
# under the lab cache, keyed by a hash of this file. Usage: stage1.sh OUTDIR   (OUTDIR must not exist yet)
set -euo pipefail
out=${1:?usage: stage1.sh OUTDIR}
suite=bookworm
mirror=${PBS_PATCH_LAB_MIRROR:-http://deb.debian.org/debian}
include=systemd-sysv,udev,dbus,openssh-server,openssh-sftp-server,qemu-guest-agent,linux-image-cloud-amd64,initramfs-tools,iproute2,python3,python-is-python3,python3-apt,sudo,procps,psmisc,lsof,ca-certificates,apt-utils
tmp="$out.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror"
# Nothing of the host's debootstrap run may leak into the image.
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/debootstrap" 2>/dev/null || true
mv "$tmp" "$out"
trap - EXIT
