#!/usr/bin/env bash
# Stage 2 of the lab image (run by `lab/labctl build`, as root): from the cached debootstrap rootfs (stage1.sh)
# to OUTDIR/{base.qcow2,vmlinuz,initrd.img}. No loop devices, no network: mkfs.ext4 -d, then qemu-img.
# Usage: build.sh STAGE1_DIR AUTHORIZED_PUBKEY_FILE OUTDIR
set -euo pipefail
stage1=${1:?} pubkey=${2:?} out=${3:?}
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
"$here/debs.sh" "$tmp/debs"
mkdir -p "$root/srv/lab-repo"
cp -r "$tmp/debs/." "$root/srv/lab-repo/"
mount -t proc proc "$root/proc"
in_root sh -ec "for d in main fault-hang fault-failonce; do
  cd /srv/lab-repo/\$d; apt-ftparchive packages . > Packages; apt-ftparchive release . > Release; done"

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
for u in e2scrub_reap.service systemd-pstore.service systemd-binfmt.service dev-hugepages.mount sys-kernel-debug.mount \
         sys-kernel-tracing.mount sys-fs-fuse-connections.mount sys-kernel-config.mount; do
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

# --- PBS stand-in package (3.2.4-1) and the other base packages, then the datastore --------------------
in_root sh -ec 'dpkg -i /srv/lab-repo/base/*.deb >/dev/null'
install -d -o 34 -g 34 "$root/srv/datastore/store1" "$root/srv/datastore/store1/.chunks" "$root/mnt/datastore/store1"
printf 'datastore: store1\n\tcomment lab datastore\n\tgc-schedule daily\n\tpath /mnt/datastore/store1\n' \
  > "$root/etc/proxmox-backup/datastore.cfg"
# The guest's admin changed this conffile: an upgrade must keep it (--force-confold).
echo "setting = local  # changed by the guest's admin" >> "$root/etc/pbs-lab/lab.conf"

# --- APT: only the lab repository, never the Internet ---------------------------------------------------
rm -f "$root/etc/apt/sources.list"
echo "deb [trusted=yes] file:/srv/lab-repo/main ./" > "$root/etc/apt/sources.list.d/lab.list"
rm -rf "$root/var/lib/apt/lists/"*
in_root apt-get update -q >/dev/null
in_root apt-get clean
in_root sh -ec 'update-initramfs -u -k all >/dev/null 2>&1; python3 -m compileall -q /usr/lib/x86_64-linux-gnu/proxmox-backup >/dev/null || true'
umount "$root/proc"

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
