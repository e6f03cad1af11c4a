#!/usr/bin/env bash
# Installs the Debian packages the tests and the lab need (run as root):
#   libreswan   - `ipsec` and `pluto`: static config checks and the lab's IKE daemons
#   cloud-init  - `cloud-init schema`: user data validation
#   iproute2, iptables, iputils-ping, procps - the lab's namespaces, NAT and pings
#   libnss3-tools - certutil, for each lab gateway's NSS database
#   nftables    - `nft`: the gateways' TCP MSS clamp, applied in the lab as on the instance, and the
#                 failover lab's stateless Elastic IP NAT (the fake EC2's)
#   the linter shellcheck - `npm run lint` runs it on every shell script (scripts/lint-shell.sh)
#   awscli, jq  - the AWS CLI v2 (as on Amazon Linux 2023) and jq: the gateway agent's real calls, against the lab's local endpoint
#   qemu-system-x86, linux-image-amd64 (Ubuntu: linux-image-generic), initramfs-tools, kmod - the lab's
#     --vm mode: a full distribution kernel (with ESP) booted over this machine's root filesystem
# Does nothing when everything is already there.
set -euo pipefail
# Debian's stock kernel package is linux-image-amd64; Ubuntu's (GitHub's runners) is linux-image-generic.
kernel_pkg=linux-image-amd64
if grep -qs '^ID=ubuntu' /etc/os-release; then kernel_pkg=linux-image-generic; fi
packages=(libreswan cloud-init iproute2 iptables iputils-ping procps libnss3-tools nftables shellcheck awscli jq qemu-system-x86 "$kernel_pkg" initramfs-tools kmod)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-system-deps: all present (${packages[*]})"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: missing ${missing[*]}; run this script as root" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/install-system-deps.log 2>&1 \
  || { tail -20 /tmp/install-system-deps.log >&2; exit 1; }
echo "install-system-deps: done"
