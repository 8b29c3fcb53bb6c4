#!/usr/bin/env bash
# Benchmark: CNI ADD latency over 100 sandboxes, our cilium-cni (through
# the node's agent: IPAM, veth, identity, BPF maps, CiliumEndpoint) vs
# Debian's reference bridge + host-local plugins, in the same lab node and
# the same run. Prints p50/p99 for both and the ratios.
# Goal: p99 < 20 ms and at most 1.5x the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release
N=${N:-100}
LAB=bcni$$
NODE=k8s-w1
[[ -x $BIN/cilium-lab && -x $BIN/cilium-cni ]] || { echo "build first: make build" >&2; exit 1; }
cleanup() { "$BIN/cilium-lab" --name $LAB down >/dev/null 2>&1 || true; rm -rf "${WORK:-}"; }
trap cleanup EXIT
WORK=$(mktemp -d)

echo "bringing up lab $LAB (cilium CNI) ..."
"$BIN/cilium-lab" --name $LAB up >/dev/null 2>&1
SOCK=/run/cilium-lab/$LAB/nodes/$NODE/cilium/cilium.sock

# Runs inside the node's network namespace; times each ADD with bash's
# EPOCHREALTIME (no extra process per measurement).
cat >"$WORK/run.sh" <<'INNER'
#!/usr/bin/env bash
set -euo pipefail
mode=$1 n=$2 conf=$3 out=$4 lab=$5 bindir=$6
export CNI_IFNAME=eth0 CNI_PATH=$bindir:/usr/lib/cni
for i in $(seq "$n"); do ip netns add "$lab-b$mode$i"; done
for i in $(seq "$n"); do
  export CNI_COMMAND=ADD CNI_CONTAINERID="bench$mode$i" CNI_NETNS="/run/netns/$lab-b$mode$i"
  export CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=b$mode$i"
  plugin=$(jq -r .type "$conf")
  t0=$EPOCHREALTIME
  "$bindir/$plugin" <"$conf" >/dev/null
  t1=$EPOCHREALTIME
  echo "$t0 $t1" | awk '{ printf "%.3f\n", ($2 - $1) * 1000 }' >>"$out"
done
for i in $(seq "$n"); do
  export CNI_COMMAND=DEL CNI_CONTAINERID="bench$mode$i" CNI_NETNS="/run/netns/$lab-b$mode$i"
  "$bindir/$(jq -r .type "$conf")" <"$conf" >/dev/null || true
  ip netns del "$lab-b$mode$i"
done
INNER
chmod +x "$WORK/run.sh"

cat >"$WORK/cilium.json" <<EOC
{"cniVersion":"1.1.0","name":"cilium","type":"cilium-cni","socket-path":"$SOCK"}
EOC
cat >"$WORK/bridge.json" <<EOC
{"cniVersion":"1.0.0","name":"benchbr","type":"bridge","bridge":"benchbr0","isGateway":true,
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/16"}]],"dataDir":"$WORK/ipam"}}
EOC
mkdir -p "$WORK/bridge-bin"; ln -s /usr/lib/cni/bridge "$WORK/bridge-bin/bridge"; ln -s /usr/lib/cni/host-local "$WORK/bridge-bin/host-local"

# One warm-up ADD/DEL each (first identity allocation, first bridge creation).
"$BIN/cilium-lab" --name $LAB exec $NODE -- "$WORK/run.sh" c 1 "$WORK/cilium.json" "$WORK/warm" $LAB "$BIN" >/dev/null
"$BIN/cilium-lab" --name $LAB exec $NODE -- "$WORK/run.sh" r 1 "$WORK/bridge.json" "$WORK/warm" $LAB "$WORK/bridge-bin" >/dev/null
"$BIN/cilium-lab" --name $LAB exec $NODE -- "$WORK/run.sh" c "$N" "$WORK/cilium.json" "$WORK/cilium.ms" $LAB "$BIN"
"$BIN/cilium-lab" --name $LAB exec $NODE -- "$WORK/run.sh" r "$N" "$WORK/bridge.json" "$WORK/bridge.ms" $LAB "$WORK/bridge-bin"

pct() { sort -n "$1" | awk -v p="$2" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print a[i] }'; }
c50=$(pct "$WORK/cilium.ms" 50); c99=$(pct "$WORK/cilium.ms" 99)
b50=$(pct "$WORK/bridge.ms" 50); b99=$(pct "$WORK/bridge.ms" 99)
echo "CNI ADD latency over $N sandboxes (ms):"
echo "  cilium-cni (agent)        p50 $c50   p99 $c99"
echo "  bridge + host-local       p50 $b50   p99 $b99"
awk -v c50="$c50" -v c99="$c99" -v b50="$b50" -v b99="$b99" 'BEGIN {
  printf "  ratio cilium/bridge: p50 %.2fx  p99 %.2fx  (goal: p99 < 20 ms and <= 1.5x)\n", c50 / b50, c99 / b99 }'
