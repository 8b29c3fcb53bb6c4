#!/usr/bin/env bash
# Benchmark: one cilium-agent's sync against a loaded Kubernetes API.
#
# A lab (default topology, our CNI, no workloads) gets simulated objects
# through its API server (`api-bench load`, kube-rs, concurrent creates):
# 1,000 CiliumNodes, 10,000 Services, EndpointSlices with 30,000
# endpoints, 5,000 CiliumIdentities; no pods. Then k8s-w1's agent is
# restarted and timed until it logs "cluster state synced": it has
# listed its Node and CiliumNodes (start-up), listed and watched every
# CiliumNode and CiliumEndpoint (cluster controller), and its
# reconcilers have written the resulting ipcache entries (BPF map) and
# node routes. Services, EndpointSlices and CiliumIdentities are loaded
# for the API's sake: the agent does not read the first two, and lists
# identities only at its first identity allocation (a pod's CNI ADD).
# Sync time is the agent's own `since_start_ms`; RSS is VmRSS 3 s after
# the sync and VmHWM (peak). Goal: sync < 5 s, RSS < 150 MB. Then a pod
# with labels of its own is created on the node and timed until Ready
# (`apply` to Ready, through the CLI): its CNI ADD allocates an
# identity, which lists the CiliumIdentities and starts the agent's
# identity cache; the RSS after it includes that cache.
#
# Baselines in the same run: the same restart on the unloaded lab
# (before loading), and on the loaded lab with the agent reading etcd
# directly (`--etcd` instead of `--k8s-kubeconfig-path`; its recorded
# command line in lab.json is switched for those runs). Loaded runs
# alternate between API and etcd. RUNS (default 3) restarts each;
# medians.
#
# The lab's cluster pool is widened to 172.16.0.0/12 (the simulated
# nodes' pod CIDRs, 172.24.0.0/24 on, are valid blocks of it, so the
# operator leaves them alone) and identity GC slowed to 1h (nothing
# references the simulated identities).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release
LAB=${LAB:-bscale$$}
NODE=k8s-w1
RUNS=${RUNS:-3}
STATE=/run/cilium-lab/$LAB/lab.json
for b in cilium-lab cilium-agent api-bench; do
  [[ -x $BIN/$b ]] || { echo "build first: make build" >&2; exit 1; }
done
L() { "$BIN/cilium-lab" --name "$LAB" "$@"; }
trap 'L down >/dev/null 2>&1 || true' EXIT
. bench/lib.sh

agent() { jq -r --arg n $NODE --arg f "$1" \
  '.processes[] | select(.name == "cilium-agent" and .host == $n) | .[$f]' "$STATE"; }
proc_pid() { jq -r --arg n "$1" '.processes[] | select(.name == $n) | .pid' "$STATE" | head -1; }
status_mb() { awk -v k="$2:" '$1 == k { printf "%.1f", $2 / 1024 }' /proc/"$1"/status; }

# Switch the recorded agent command line between the API and etcd.
KUBECONFIG_ARG=""
use() { # api|etcd
  local tmp=$STATE.tmp
  if [[ $1 == etcd ]]; then
    jq --arg n $NODE --arg e "$ETCD" '(.processes[] | select(.name == "cilium-agent" and .host == $n) | .argv) |=
      (index("--k8s-kubeconfig-path") as $i | if $i then .[:$i] + ["--etcd", $e] + .[$i+2:] else . end)' \
      "$STATE" >"$tmp"
  else
    jq --arg n $NODE --arg k "$KUBECONFIG_ARG" '(.processes[] | select(.name == "cilium-agent" and .host == $n) | .argv) |=
      (index("--etcd") as $i | if $i then .[:$i] + ["--k8s-kubeconfig-path", $k] + .[$i+2:] else . end)' \
      "$STATE" >"$tmp"
  fi
  mv "$tmp" "$STATE"
}

# Restart the agent and wait for its "cluster state synced" line;
# prints: since_start_ms rss_mb peak_mb cilium_nodes ipcache_entries.
sync_once() {
  local log before line pid deadline
  log=$(agent log)
  before=$(grep -c "cluster state synced" "$log" || true)
  L restart $NODE/cilium-agent >/dev/null
  deadline=$(($(date +%s) + 300))
  until [[ $(grep -c "cluster state synced" "$log") -gt $before ]]; do
    (($(date +%s) < deadline)) || { echo "agent did not sync in 300 s:" >&2; tail -20 "$log" >&2; exit 1; }
    sleep 0.05
  done
  line=$(grep "cluster state synced" "$log" | tail -1)
  sleep 3
  pid=$(agent pid)
  field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$line"; }
  local rss peak pod
  rss=$(status_mb "$pid" VmRSS); peak=$(status_mb "$pid" VmHWM)
  pod=$(first_pod)
  sleep 3
  echo "$(field since_start_ms) $rss $peak $(field cilium_nodes) $(field ipcache_entries) $pod $(status_mb "$pid" VmRSS)"
}

# A pod with labels of its own on the node: prints ms from apply to Ready.
first_pod() {
  local name t0 t1
  name=probe-$BASHPID-$RANDOM
  t0=$(date +%s%3N)
  L apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, labels: {app: $name}}
spec:
  nodeSelector: {kubernetes.io/hostname: $NODE}
  containers: [{name: c, image: nicolaka/netshoot, command: [sleep, infinity]}]
YAML
  L wait pods "$name" --for condition=Ready --timeout 120s >/dev/null
  t1=$(date +%s%3N)
  L delete pod "$name" --force >/dev/null
  echo $((t1 - t0))
}

# Wait until the lab's processes are quiet (< 0.1 CPU-s/s for 3 s).
settle() {
  local pids prev now quiet=0 start=$SECONDS
  pids=$(jq -r '.processes[].pid' "$STATE")
  ticks() { local t=0 p; for p in $pids; do t=$((t + $(awk '{ print $14 + $15 }' /proc/"$p"/stat 2>/dev/null || echo 0))); done; echo $t; }
  prev=$(ticks)
  while ((quiet < 3 && SECONDS - start < 300)); do
    sleep 1; now=$(ticks)
    if ((now - prev < 10)); then quiet=$((quiet + 1)); else quiet=0; fi
    prev=$now
  done
  echo "  (settled after $((SECONDS - start)) s)"
}

declare -A SYNC RSS PEAK POD RSS2
record() { # key "since rss peak nodes entries pod-ms rss-after-pod"
  local s r p n e d r2
  read -r s r p n e d r2 <<<"$2"
  SYNC[$1]+="$s "; RSS[$1]+="$r "; PEAK[$1]+="$p "; POD[$1]+="$d "; RSS2[$1]+="$r2 "
  echo "  $1: synced in ${s} ms ($n CiliumNodes, $e ipcache entries), RSS ${r} MB, peak ${p} MB;" \
    "first pod Ready in ${d} ms, RSS then ${r2} MB"
}

echo "bringing up lab $LAB ..."
L up --config cluster-pool-ipv4-cidr=172.16.0.0/12 --config ipv4-native-routing-cidr=172.16.0.0/12 \
  --config identity-gc-interval=1h >/dev/null
KUBECONFIG_ARG=$(agent argv | jq -r 'index("--k8s-kubeconfig-path") as $i | .[$i + 1]')
ETCD="http://$(jq -r '.processes[] | select(.name == "etcd") | .argv | index("--advertise-client-urls") as $i | .[$i + 1]' \
  "$STATE" | sed 's|^http://||')"

echo "unloaded lab, agent on the API:"
for r in $(seq "$RUNS"); do out=$(sync_once); record unloaded "$out"; done

echo "loading simulated objects through the API server:"
"$BIN/api-bench" load --kubeconfig "$(L kubeconfig)"
settle
cp_pid=$(proc_pid control-plane); etcd_pid=$(proc_pid etcd)
echo "  control plane (API server + controllers) RSS $(status_mb "$cp_pid" VmRSS) MB, etcd RSS $(status_mb "$etcd_pid" VmRSS) MB"

echo "loaded lab, $RUNS restarts each, alternating:"
for r in $(seq "$RUNS"); do
  order="api etcd"; ((r % 2 == 0)) && order="etcd api"
  for m in $order; do
    use "$m"
    out=$(sync_once)
    record "$m" "$out"
  done
done
use api

med() { median ${1}; }
echo "agent on $NODE, medians of $RUNS (goal: sync < 5000 ms, RSS < 150 MB; upstream: 1.2 GB at ~9k services / 15k pods):"
for k in unloaded etcd api; do
  case $k in unloaded) what="unloaded lab, API      ";; etcd) what="loaded, etcd directly  ";; api) what="loaded, API            ";; esac
  echo "  $what sync $(med "${SYNC[$k]}") ms, RSS $(med "${RSS[$k]}") MB, peak $(med "${PEAK[$k]}") MB;" \
    "first pod Ready $(med "${POD[$k]}") ms, RSS then $(med "${RSS2[$k]}") MB"
done
awk -v a="$(med "${SYNC[api]}")" -v e="$(med "${SYNC[etcd]}")" -v u="$(med "${SYNC[unloaded]}")" \
    -v ra="$(med "${RSS[api]}")" -v re="$(med "${RSS[etcd]}")" -v ru="$(med "${RSS[unloaded]}")" \
    -v pa="$(med "${POD[api]}")" -v pe="$(med "${POD[etcd]}")" -v pu="$(med "${POD[unloaded]}")" \
    -v qa="$(med "${RSS2[api]}")" -v qe="$(med "${RSS2[etcd]}")" -v qu="$(med "${RSS2[unloaded]}")" 'BEGIN {
  printf "  ratio loaded API / loaded etcd: sync %.2fx, RSS %.2fx, first pod %.2fx, RSS then %.2fx\n", a / e, ra / re, pa / pe, qa / qe
  printf "  ratio loaded API / unloaded API: sync %.2fx, RSS %.2fx, first pod %.2fx, RSS then %.2fx\n", a / u, ra / ru, pa / pu, qa / qu
  printf "  against the goals: sync %.2f of 5 s, RSS %.2f of 150 MB (%.2f with the identity cache)\n", a / 5000, ra / 150, qa / 150 }'
