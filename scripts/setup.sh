#!/usr/bin/env bash
# Installs what kubewire needs on a fresh Debian/Ubuntu machine (as root): the kernel tools,
# the reference CNI plugins (for the differential tests and benchmark), openssl (the ingress's
# certificates), wrk and nginx (the ingress benchmark's load and reference), user-mode Linux
# and kmod (a kernel with IPVS for the tests this one cannot run), npm packages, builds the
# project, and puts `kubewire` on PATH (a link to this checkout's bin, as `npm link` would,
# without npx's cost at every command).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "kubewire setup needs root (network namespaces, iptables): run it with sudo" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq iproute2 iptables nftables conntrack ipset util-linux procps iputils-ping \
  containernetworking-plugins hyperfine curl netcat-openbsd ipvsadm g++ make python3 \
  openssl wrk nginx-light user-mode-linux kmod bind9-dnsutils dnsmasq-base dnsperf tcpdump chromium iperf3 ethtool >/dev/null
npm ci --no-audit --no-fund
npm run build
ln -sfn "$PWD/bin/kubewire.js" /usr/local/bin/kubewire
echo "$(/usr/local/bin/kubewire --version) is on PATH: /usr/local/bin/kubewire -> $PWD/bin/kubewire.js"
