#!/usr/bin/env bash
# Debian packages the lab needs: container runtime, CNI plugins, network tools, busybox for images.
# Go comes with the machine; the Kubernetes, etcd, flannel and CoreDNS binaries are built by build.sh.
set -euo pipefail
# nftables: `nft`, which kube-proxy's nftables mode runs and the node agent image carries.
pkgs=(containerd runc containernetworking-plugins iptables nftables conntrack tcpdump iproute2 busybox-static
      ethtool net-tools procps util-linux openssl)
# `install-deps.sh cilium` (ci/lab up --cni cilium) adds what the Cilium agent runs: clang and llc
# compile its BPF programs at run time, `bpftool feature probe` is how it probes the kernel.
if [ "${1:-}" = cilium ]; then pkgs+=(clang llvm bpftool); fi
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
