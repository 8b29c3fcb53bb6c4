#!/usr/bin/env bash
# Benchmark: cilium-agent resident memory with 100 pods on its node.
# Baseline in the same run: the same agent with no pods. Goal: < 30 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release
LAB=brss$$
NODE=k8s-w1
[[ -x $BIN/cilium-lab ]] || { echo "build first: make build" >&2; exit 1; }
trap '"$BIN/cilium-lab" --name $LAB down >/dev/null 2>&1 || true' EXIT
L() { "$BIN/cilium-lab" --name $LAB "$@"; }
rss_mb() {
  local pid
  pid=$(jq -r --arg n "$NODE" '.processes[] | select(.name == "cilium-agent" and .host == $n) | .pid' \
    /run/cilium-lab/$LAB/lab.json)
  awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' /proc/"$pid"/status
}
echo "bringing up lab $LAB ..."
L up >/dev/null 2>&1
idle=$(rss_mb)
L apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: rss}
spec:
  replicas: 100
  selector: {matchLabels: {app: rss}}
  template:
    metadata: {labels: {app: rss}}
    spec:
      nodeSelector: {kubernetes.io/hostname: $NODE}
      containers: [{name: c, image: nicolaka/netshoot, command: [sleep, infinity]}]
YAML
L wait pods -l app=rss --for condition=Ready --timeout 300s >/dev/null
n=$(L get pods -l app=rss -o name | wc -l)
loaded=$(rss_mb)
echo "cilium-agent RSS on $NODE: idle ${idle} MB, with $n pods ${loaded} MB (goal < 30 MB)"
awk -v a="$loaded" -v b="$idle" 'BEGIN { printf "  ratio loaded/idle %.2fx, loaded/goal %.2f\n", a / b, a / 30 }'
