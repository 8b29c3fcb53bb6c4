#!/usr/bin/env bash
# Benchmark: `cilium-lab up --workloads` of the seed topology (four hosts,
# etcd, control plane, three kubelets, four sample pods Ready), build
# excluded. Baseline in the same run: the same namespaces, segments,
# addresses and routes created by a plain iproute2 script, i.e. the floor
# of what the fabric costs on this machine. Target: under 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/cilium-lab
RUNS=${RUNS:-3}
LAB=bench$$
[[ -x $BIN ]] || { echo "build first: make build" >&2; exit 1; }

now_ms() { date +%s%3N; }

baseline() {
  local p=bl$$
  ip netns add $p-fabric
  for h in ctr w1 w0 router; do ip netns add $p-$h; done
  ip -n $p-fabric link add br0 type bridge; ip -n $p-fabric link set br0 up
  ip -n $p-fabric link add br1 type bridge; ip -n $p-fabric link set br1 up
  i=0
  for spec in ctr:eth1:0:192.168.10.100 w1:eth1:0:192.168.10.101 w0:eth1:1:192.168.20.100 \
              router:eth1:0:192.168.10.200 router:eth2:1:192.168.20.200; do
    IFS=: read -r h dev br addr <<<"$spec"
    ip -n $p-fabric link add p$i type veth peer name $dev netns $p-$h
    ip -n $p-fabric link set p$i master br$br up
    ip -n $p-$h addr add $addr/24 dev $dev; ip -n $p-$h link set $dev up
    i=$((i+1))
  done
  ip netns exec $p-router sysctl -q -w net.ipv4.ip_forward=1
  ip -n $p-ctr route add 192.168.20.0/24 via 192.168.10.200
  ip -n $p-w0 route add 192.168.10.0/24 via 192.168.20.200
  ip netns exec $p-ctr ping -c1 -W2 192.168.20.100 >/dev/null
  for n in fabric ctr w1 w0 router; do ip netns del $p-$n; done
}

cleanup() { $BIN --name $LAB down >/dev/null 2>&1 || true; }
trap cleanup EXIT

total=0; base_total=0
for r in $(seq "$RUNS"); do
  t0=$(now_ms); baseline; t1=$(now_ms)
  base_total=$((base_total + t1 - t0))
  t0=$(now_ms); $BIN --name $LAB up --workloads >/dev/null 2>&1; t1=$(now_ms)
  ms=$((t1 - t0)); total=$((total + ms))
  echo "run $r: cilium-lab up --workloads ${ms} ms (fabric-only baseline $((base_total / r)) ms avg)"
  $BIN --name $LAB down >/dev/null 2>&1
done
avg=$((total / RUNS)); base=$((base_total / RUNS))
echo "lab up with 4 pods Ready: avg ${avg} ms over ${RUNS} runs (target < 10000 ms)"
awk -v a=$avg -v b=$base 'BEGIN { printf "ratio to the bare-fabric baseline: %.1fx; ratio to the 10 s target: %.2f\n", a/b, a/10000 }'
