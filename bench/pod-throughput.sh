#!/usr/bin/env bash
# Benchmark: pod-to-pod TCP throughput (iperf3, single stream) through our
# datapath (lab with the cilium CNI: lxc/cilium_host programs, native
# routing) vs a baseline built in the same run with bare veth pairs and
# plain kernel routing, no BPF: the same shape (pod veth /32 routes on a
# node, node-to-node link). Same node and across nodes. Goal: >= 0.95x.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release
T=${T:-5}
LAB=btp$$
BL=bl$$
[[ -x $BIN/cilium-lab ]] || { echo "build first: make build" >&2; exit 1; }
cleanup() {
  "$BIN/cilium-lab" --name $LAB down >/dev/null 2>&1 || true
  for n in na nb p1 p2 p3; do ip netns del $BL-$n 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null || true; done
}
PIDS=()
trap cleanup EXIT

gbps() { jq -r '.end.sum_received.bits_per_second / 1e9'; }

# --- baseline: bare veth + kernel routing -----------------------------------
for n in na nb p1 p2 p3; do ip netns add $BL-$n; done
pod() { # pod-ns node-ns ip
  ip -n "$2" link add "v$1" type veth peer name eth0 netns "$BL-$1"
  ip -n "$BL-$1" addr add "$3/32" dev eth0; ip -n "$BL-$1" link set eth0 up; ip -n "$BL-$1" link set lo up
  ip -n "$2" link set "v$1" up
  ip -n "$BL-$1" route add 169.254.1.1 dev eth0 scope link
  ip -n "$BL-$1" route add default via 169.254.1.1 dev eth0
  ip netns exec "$2" sysctl -q -w "net.ipv4.conf.v$1.proxy_arp=1"
  ip -n "$2" route add "$3/32" dev "v$1" scope link
}
for n in na nb; do ip netns exec $BL-$n sysctl -q -w net.ipv4.ip_forward=1; done
pod p1 $BL-na 10.77.0.11; pod p2 $BL-na 10.77.0.12; pod p3 $BL-nb 10.77.1.13
ip -n $BL-na link add eth1 type veth peer name eth1 netns $BL-nb
ip -n $BL-na addr add 192.0.2.1/24 dev eth1; ip -n $BL-na link set eth1 up
ip -n $BL-nb addr add 192.0.2.2/24 dev eth1; ip -n $BL-nb link set eth1 up
ip -n $BL-na route add 10.77.1.0/24 via 192.0.2.2; ip -n $BL-nb route add 10.77.0.0/24 via 192.0.2.1
ip netns exec $BL-p2 iperf3 -s -D -1 >/dev/null; ip netns exec $BL-p3 iperf3 -s -D -1 >/dev/null
sleep_until_listening() { for _ in $(seq 100); do "$@" && return 0; sleep 0.05; done; return 1; }
sleep_until_listening ip netns exec $BL-p2 sh -c 'ss -ltn | grep -q :5201'
sleep_until_listening ip netns exec $BL-p3 sh -c 'ss -ltn | grep -q :5201'
base_same=$(ip netns exec $BL-p1 iperf3 -c 10.77.0.12 -t "$T" -J | gbps)
base_cross=$(ip netns exec $BL-p1 iperf3 -c 10.77.1.13 -t "$T" -J | gbps)

# --- our datapath ---------------------------------------------------------------
echo "bringing up lab $LAB (cilium CNI) ..."
"$BIN/cilium-lab" --name $LAB up --workloads >/dev/null 2>&1
L() { "$BIN/cilium-lab" --name $LAB "$@"; }
pod_on() { L get pods -o wide | awk -v n="$1" '$1 ~ /^webpod-/ && $7 == n { print $1, $6; exit }'; }
read -r same_pod same_ip < <(pod_on k8s-ctr)
read -r cross_pod cross_ip < <(pod_on k8s-w1)
for p in "$same_pod" "$cross_pod"; do L exec "$p" -- iperf3 -s -D >/dev/null; done
for p in "$same_pod" "$cross_pod"; do sleep_until_listening L exec "$p" -- sh -c 'ss -ltn | grep -q :5201'; done
ours_same=$(L exec curl-pod -- iperf3 -c "$same_ip" -t "$T" -J | gbps)
ours_cross=$(L exec curl-pod -- iperf3 -c "$cross_ip" -t "$T" -J | gbps)

echo "pod-to-pod TCP throughput (Gbit/s, iperf3 -t $T):"
awk -v bs="$base_same" -v os="$ours_same" -v bc="$base_cross" -v oc="$ours_cross" 'BEGIN {
  printf "  same node:   bare veth %.2f   cilium datapath %.2f   ratio %.2fx\n", bs, os, os / bs
  printf "  cross node:  bare veth %.2f   cilium datapath %.2f   ratio %.2fx   (goal >= 0.95x)\n", bc, oc, oc / bc }'
