#!/usr/bin/env bash
# Idempotent machine setup for the lab and the tests: installs the Debian
# packages the project needs, mounts bpffs and a cgroup2 hierarchy.
# Safe to run repeatedly; it changes nothing that is already in place.
set -euo pipefail

PACKAGES=(
  clang-19 llvm-19 libbpf-dev bpftool
  protobuf-compiler libprotobuf-dev
  etcd-server etcd-client
  frr
  iproute2 iptables util-linux procps psmisc
  iperf3 tcpdump curl iputils-ping dnsutils arping jq
  podman runc containernetworking-plugins busybox-static
)

log() { printf '==> %s\n' "$*"; }

# kubectl (1.27-1.33, picked by the machine's dispatcher) comes with the
# machine image, not from Debian: the API tests run it.
if ! command -v kubectl >/dev/null; then
  echo "setup: kubectl is missing; install a kubectl 1.29-1.33 on the PATH" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  log "installing ${#missing[@]} missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Never start distribution services (etcd, frr) on the host: the lab runs
  # its own instances inside network namespaces.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
  if ((created_policy)); then rm -f "$policy"; fi
else
  log "all ${#PACKAGES[@]} packages present"
fi

# bpffs: BPF pins live under /sys/fs/bpf/<lab>/...
if ! findmnt -t bpf /sys/fs/bpf >/dev/null 2>&1; then
  log "mounting bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi

# A cgroup2 hierarchy for per-node cgroups (socket hooks attach there, never
# to the root).
CGROOT=/run/cilium/cgroupv2
if ! findmnt -t cgroup2 "$CGROOT" >/dev/null 2>&1; then
  log "mounting cgroup2 on $CGROOT"
  mkdir -p "$CGROOT"
  mount -t cgroup2 none "$CGROOT"
fi

log "setup complete"
