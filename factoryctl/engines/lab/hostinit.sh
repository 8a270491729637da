#!/bin/sh
# PID 1 of a lab host's fresh PID namespace, still looking at the machine's filesystem:
# give the host its own kernel views (proc, sys, dev, run, tmp), pivot into its overlay
# root and hand over to lab-init. Usage: hostinit.sh NAME MERGED_ROOT FAKE_GPUS
set -eu
name=$1 root=$2 gpus=$3

hostname "$name"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
# Mounted from inside the network namespace, so /sys/class/net shows the host's links.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
# slurmd will not start without cgroup hierarchies: show the machine's (v1, v2 or both).
if mountpoint -q /sys/fs/cgroup; then
  mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
fi
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
mkdir -m 1777 "$root/run/lock"  # init scripts (slurmd's) touch /var/lock/<name>
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"

dev=$root/dev
mount -t tmpfs -o mode=755,nosuid tmpfs "$dev"
mknod -m 666 "$dev/null" c 1 3
mknod -m 666 "$dev/zero" c 1 5
mknod -m 666 "$dev/full" c 1 7
mknod -m 666 "$dev/random" c 1 8
mknod -m 666 "$dev/urandom" c 1 9
mknod -m 666 "$dev/tty" c 5 0
mkdir "$dev/pts" "$dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$dev/pts"
ln -s pts/ptmx "$dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$dev/shm"
ln -s /proc/self/fd "$dev/fd"
ln -s /proc/self/fd/0 "$dev/stdin"
ln -s /proc/self/fd/1 "$dev/stdout"
ln -s /proc/self/fd/2 "$dev/stderr"
# Fake GPUs: character devices with NVIDIA's major number, enough for Slurm GRES files.
i=0
while [ "$i" -lt "$gpus" ]; do
  mknod -m 666 "$dev/nvidia$i" c 195 "$i"
  i=$((i + 1))
done

cd "$root"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot  # drop every machine mount (and other hosts' overlays) from view
rmdir /.oldroot
exec /usr/local/sbin/lab-init
