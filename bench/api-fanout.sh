#!/usr/bin/env bash
# Benchmark: watch fan-out of the API server. 100 watchers (each its own
# client and connection, as 100 agents) watch ConfigMaps; one writer
# creates 1,000 a second for 10 s, stamping the send time in each; every
# watcher records the delay to each event (write-to-event latency,
# p50/p99). Baseline in the same run: the same watchers and writer on
# etcd directly (the store's etcd backend). A private etcd and the API
# server over it (the lab's server code, in a child process) are
# started by `api-bench fanout`; rounds alternate between the two and
# which goes first (ROUNDS, default 3; medians). Goal: API p99 < 50 ms.
# Needs no root. WATCHERS, RATE, SECONDS change the load.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/api-bench
[[ -x $BIN ]] || { echo "build first: make build" >&2; exit 1; }
exec "$BIN" fanout --watchers "${WATCHERS:-100}" --rate "${RATE:-1000}" \
  --seconds "${SECONDS_PER_ROUND:-10}" --rounds "${ROUNDS:-3}"
