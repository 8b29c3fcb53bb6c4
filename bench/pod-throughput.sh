#!/usr/bin/env bash
# Benchmark: pod-to-pod TCP throughput (iperf3, one stream) through our
# datapath (lab with the cilium CNI, native routing) vs a baseline built in
# the same run from bare veth pairs and plain kernel routing, no BPF, in
# the same shape (see lib.sh). Same node and across nodes. Goal: >= 0.95x
# same node, >= 1.0x across nodes.
#
# RUNS rounds (default 5), each measuring baseline and datapath back to
# back for both cases; which of the two goes first alternates from round
# to round, so that neither always meets the machine in the same state.
# Medians are reported: this 2-core machine is noisy. Every run's figures
# go to stderr as they come.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
BIN=$PWD/target/release
T=${T:-5}
RUNS=${RUNS:-5}
LAB=btp$$
BL=bl$$
[[ -x $BIN/cilium-lab ]] || { echo "build first: make build" >&2; exit 1; }
(( RUNS >= 1 )) || { echo "RUNS must be at least 1" >&2; exit 1; }
trap '"$BIN/cilium-lab" --name $LAB down >/dev/null 2>&1 || true; bl_cleanup' EXIT

bl_build
ip -n $BL-na route add 10.77.1.0/24 via 192.0.2.2; ip -n $BL-nb route add 10.77.0.0/24 via 192.0.2.1
echo "bringing up lab $LAB (cilium CNI, native routing) ..."
"$BIN/cilium-lab" --name $LAB up --workloads >/dev/null 2>&1
LABCLI="$BIN/cilium-lab --name $LAB"
bs=(); os=(); bc=(); oc=()
# One case of a round: baseline and datapath back to back, in the order
# of the round ($1: 0 = baseline first). Sets $b and $o.
pair() { # order baseline-server-pod baseline-server-ip lab-server-node
  if (( $1 == 0 )); then
    b=$(bl_iperf p1 "$2" "$3" "$T"); o=$(lab_iperf "$LABCLI" "$4" "$T")
  else
    o=$(lab_iperf "$LABCLI" "$4" "$T"); b=$(bl_iperf p1 "$2" "$3" "$T")
  fi
}
for i in $(seq "$RUNS"); do
  order=$(( i % 2 ))
  pair $order p2 10.77.0.12 k8s-ctr; bs+=("$b"); os+=("$o")
  pair $order p3 10.77.1.13 k8s-w1; bc+=("$b"); oc+=("$o")
  awk -v i="$i" -v n="$RUNS" -v bs="${bs[-1]}" -v os="${os[-1]}" -v bc="${bc[-1]}" -v oc="${oc[-1]}" 'BEGIN {
    printf "  run %d/%d: same node %.2f / %.2f, cross node %.2f / %.2f (bare veth / cilium datapath)\n", i, n, bs, os, bc, oc }' >&2
done
base_same=$(median "${bs[@]}"); ours_same=$(median "${os[@]}")
base_cross=$(median "${bc[@]}"); ours_cross=$(median "${oc[@]}")

echo "pod-to-pod TCP throughput (Gbit/s, iperf3 -t $T, median of $RUNS interleaved runs):"
awk -v bs="$base_same" -v os="$ours_same" -v bc="$base_cross" -v oc="$ours_cross" 'BEGIN {
  printf "  same node:   bare veth %.2f   cilium datapath %.2f   ratio %.2fx\n", bs, os, os / bs
  printf "  cross node:  bare veth %.2f   cilium datapath %.2f   ratio %.2fx   (goal >= 1.0x)\n", bc, oc, oc / bc }'
