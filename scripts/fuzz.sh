#!/usr/bin/env bash
# Build the fuzz targets (fuzz/) with libFuzzer on the stable toolchain
# and run each for SECONDS (default 10) from its seed corpus. A crash
# fails the run and leaves its input in target/fuzz-artifacts/.
#
#   scripts/fuzz.sh            # every target, 10 s each
#   scripts/fuzz.sh 300        # longer (make fuzz)
#   scripts/fuzz.sh 60 manifests cni_stdin
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-10}
shift || true
triple=$(rustc -vV | sed -n 's/^host: //p')
# What cargo-fuzz passes, minus the sanitizer (which needs nightly):
# coverage instrumentation for libFuzzer's guidance.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"
export CARGO_TARGET_DIR="$PWD/target/fuzz"

echo "==> building fuzz targets"
# --target keeps RUSTFLAGS away from build scripts.
cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^cilium-fuzz$')
fi

artifacts="$PWD/target/fuzz-artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
  seeds="fuzz/corpus/$t"
  mkdir -p "$work/$t"
  echo "==> $t: ${seconds}s"
  # New inputs go to the scratch corpus (first directory); the committed
  # seeds stay as they are.
  if ! "$CARGO_TARGET_DIR/$triple/release/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts/$t-" -print_final_stats=1 \
      "$work/$t" $( [[ -d $seeds ]] && echo "$seeds" ) >"$work/$t.log" 2>&1; then
    tail -n 40 "$work/$t.log"
    failed+=("$t")
  else
    grep -E '^stat::number_of_executed_units|^Done' "$work/$t.log" | tr '\n' ' '
    echo
  fi
done
if ((${#failed[@]})); then
  echo "fuzz targets failed: ${failed[*]} (inputs in $artifacts)" >&2
  exit 1
fi
echo "==> fuzzing done: ${#targets[@]} targets, ${seconds}s each, no crash"
