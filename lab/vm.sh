#!/usr/bin/env bash
# lab/vm.sh: run a command as root inside a small QEMU virtual machine that boots Debian's stock
# kernel (which has ESP and every netfilter module) over this machine's own root filesystem (9p).
# The lab uses it where the host kernel cannot install IPsec Child SAs or pass traffic through them.
#
#   lab/vm.sh [--mem MB] [--cpus N] [--timeout S] -- COMMAND [ARGS...]
#
# The command sees the same files, PATH and working directory; $TMPDIR is a tmpfs inside the VM
# (use it for sockets and databases: 9p is no place for them). Its stdout and stderr arrive when
# the VM ends. The root is mounted cache=loose: the VM keeps what it read in its page cache (without
# it every exec reads the binary and its libraries over 9p again: curl took 1.3 s to start, 0.2 s with
# it), so files the host changes while the VM runs may look stale inside it, and what the VM writes
# reaches the host for sure only at the sync before power-off (a timed-out run may leave its files
# short). Exit status: the command's, 124 on timeout, 125 when the VM could not be set up.
# Needs root, qemu-system-x86 and linux-image-amd64 (scripts/install-system-deps.sh installs them).
# Runs under TCG emulation (no KVM needed): boot takes 10-20 s; CPU-heavy code runs several times slower.
set -euo pipefail
# Two vCPUs (MTTCG: a host thread each): on an otherwise idle 2-core host they start processes about
# twice as fast as one (measured: 21 vs 40 ms each, four at a time). With other VMs or heavy jobs on
# the host one is faster (40 vs 170 ms each, measured): a vCPU waiting on a descheduled one spins.
mem=1024 cpus=2 limit=600
while [ $# -gt 0 ]; do
  case "$1" in
    --mem) mem=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --timeout) limit=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "vm.sh: no command given (lab/vm.sh -- COMMAND ...)" >&2; exit 125; }
[ "$(id -u)" = 0 ] || { echo "vm.sh: needs root" >&2; exit 125; }
command -v qemu-system-x86_64 >/dev/null || { echo "vm.sh: qemu-system-x86_64 missing (apt-get install -y qemu-system-x86)" >&2; exit 125; }
# The newest distribution kernel in /boot (Debian: *-amd64, Ubuntu: *-generic).
kernel=$( (ls /boot/vmlinuz-*-amd64 /boot/vmlinuz-*-generic 2>/dev/null || true) | sort -V | tail -1)
[ -n "$kernel" ] || { echo "vm.sh: no distribution kernel in /boot (apt-get install -y linux-image-amd64)" >&2; exit 125; }
kver=${kernel#/boot/vmlinuz-}

# An initramfs that can mount the root over virtio-9p, built once per kernel version. It holds only
# the modules for that (MODULES=list): with the distribution's default (most) it is 30 MB, and its
# udev loads dozens of drivers under emulation; every other module loads from the root when needed.
cache=/var/cache/hubspoke-vpn-vm
mkdir -p "$cache"
initrd="$cache/initrd-9p-list-$kver.img"
if [ ! -s "$initrd" ]; then
  conf=$(mktemp -d)
  cp -r /etc/initramfs-tools/. "$conf/"
  printf '9p\n9pnet\n9pnet_virtio\nvirtio_pci\n' >>"$conf/modules"
  mkdir -p "$conf/conf.d" && echo MODULES=list >"$conf/conf.d/zz-hubspoke-vm"
  if ! mkinitramfs -d "$conf" -o "$initrd.tmp" "$kver" >"$cache/mkinitramfs.log" 2>&1; then
    tail -5 "$cache/mkinitramfs.log" >&2; rm -rf "$conf"; exit 125
  fi
  mv "$initrd.tmp" "$initrd"; rm -rf "$conf"
fi

# Node's compile cache, kept across runs (and shared with the host's node when the caller sets
# NODE_COMPILE_CACHE to it): under emulation loading the AWS SDK took 18-26 s, 8-9 s from the cache.
node_cache=${NODE_COMPILE_CACHE:-$cache/node-compile-cache}

run=$(mktemp -d /tmp/hubspoke-vm.XXXXXX)
trap 'rm -rf "$run"' EXIT
printf '%q ' "$@" >"$run/cmd"
cat >"$run/init" <<INIT
#!/bin/sh
export PATH=$PATH HOME=/root TMPDIR=/run/tmp NODE_COMPILE_CACHE=$(printf '%q' "$node_cache")
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t tmpfs tmpfs /run
mkdir -p /run/tmp /run/netns /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null; mount -t tmpfs tmpfs /dev/shm 2>/dev/null
ip link set lo up
cd $(printf '%q' "$PWD") && sh -c ". $run/cmd" >$run/out 2>$run/err; echo \$? >$run/rc
sync; echo o >/proc/sysrq-trigger
INIT
chmod +x "$run/init"
rc=0
timeout "$limit" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$mem" -smp "$cpus" \
  -nographic -no-reboot -nic none -serial "file:$run/console" -monitor none \
  -kernel "$kernel" -initrd "$initrd" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap,id=hostroot \
  -append "console=ttyS0 root=hostroot rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose rw init=$run/init panic=-1 quiet loglevel=3" \
  </dev/null >/dev/null 2>"$run/qemu.err" || rc=$?
[ -f "$run/out" ] && cat "$run/out"
[ -f "$run/err" ] && cat "$run/err" >&2
if [ -f "$run/rc" ]; then exit "$(cat "$run/rc")"; fi
[ "$rc" = 124 ] && { echo "vm.sh: timed out after $limit s" >&2; exit 124; }
echo "vm.sh: the VM ended without the command's exit status; console tail:" >&2
tail -20 "$run/console" "$run/qemu.err" >&2 2>/dev/null || true
exit 125
