#!/usr/bin/env bash
# Installs what nodewire's tests and demo need, only when something is missing:
# Debian's Erlang (epmd, erl, erlc), iproute2 (ip netns, veth, bridge, tc) and
# wireguard-tools (wg show, wg-quick), wireguard-go (a standard WireGuard peer in e2e),
# ethtool (the wan matrix turns segmentation offload off), tinyproxy (an HTTP CONNECT proxy for
# TestTCPFallback), etcd-server and etcd-client (a real etcd and etcdctl for overlay/etcdsource,
# overlayctl publish and TestFleet). Idempotent and non-interactive.
set -euo pipefail
need=()
command -v erl   >/dev/null 2>&1 || need+=(erlang-nox)
command -v erlc  >/dev/null 2>&1 || need+=(erlang-nox)
command -v epmd  >/dev/null 2>&1 || need+=(erlang-nox)
command -v ip    >/dev/null 2>&1 || need+=(iproute2)
command -v tc    >/dev/null 2>&1 || need+=(iproute2)
command -v wg    >/dev/null 2>&1 || need+=(wireguard-tools)
command -v wireguard-go >/dev/null 2>&1 || need+=(wireguard-go)
command -v nft   >/dev/null 2>&1 || need+=(nftables)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client) # peers/sshsig interop with ssh-keygen -Y
command -v ping  >/dev/null 2>&1 || need+=(iputils-ping)
command -v tinyproxy >/dev/null 2>&1 || need+=(tinyproxy)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
command -v etcd  >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
