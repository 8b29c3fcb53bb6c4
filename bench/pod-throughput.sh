#!/usr/bin/env bash
# Benchmark: pod-to-pod TCP throughput (iperf3, one stream) through our
# datapath (lab with the cilium CNI, native routing) vs a baseline built in
# the same run from bare veth pairs and plain kernel routing, no BPF, in
# the same shape (see lib.sh). Same node and across nodes. Goal: >= 0.95x.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
BIN=$PWD/target/release
T=${T:-5}
LAB=btp$$
BL=bl$$
[[ -x $BIN/cilium-lab ]] || { echo "build first: make build" >&2; exit 1; }
trap '"$BIN/cilium-lab" --name $LAB down >/dev/null 2>&1 || true; bl_cleanup' EXIT

bl_build
ip -n $BL-na route add 10.77.1.0/24 via 192.0.2.2; ip -n $BL-nb route add 10.77.0.0/24 via 192.0.2.1
echo "bringing up lab $LAB (cilium CNI, native routing) ..."
"$BIN/cilium-lab" --name $LAB up --workloads >/dev/null 2>&1
LABCLI="$BIN/cilium-lab --name $LAB"
bs=(); os=(); bc=(); oc=()
# Interleaved runs, medians reported: this 2-core machine is noisy.
for _ in $(seq "${RUNS:-3}"); do
  bs+=("$(bl_iperf p1 p2 10.77.0.12 "$T")"); os+=("$(lab_iperf "$LABCLI" k8s-ctr "$T")")
  bc+=("$(bl_iperf p1 p3 10.77.1.13 "$T")"); oc+=("$(lab_iperf "$LABCLI" k8s-w1 "$T")")
done
base_same=$(median "${bs[@]}"); ours_same=$(median "${os[@]}")
base_cross=$(median "${bc[@]}"); ours_cross=$(median "${oc[@]}")

echo "pod-to-pod TCP throughput (Gbit/s, iperf3 -t $T, median of ${RUNS:-3} interleaved runs):"
awk -v bs="$base_same" -v os="$ours_same" -v bc="$base_cross" -v oc="$ours_cross" 'BEGIN {
  printf "  same node:   bare veth %.2f   cilium datapath %.2f   ratio %.2fx\n", bs, os, os / bs
  printf "  cross node:  bare veth %.2f   cilium datapath %.2f   ratio %.2fx   (goal >= 0.95x)\n", bc, oc, oc / bc }'
