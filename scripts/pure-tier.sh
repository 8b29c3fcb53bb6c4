#!/usr/bin/env bash
# Prove the pure test tier needs neither root nor clang: clone the
# committed tree into a scratch directory and run `cargo test --workspace`
# there as user nobody, without capabilities, in a private mount namespace
# where clang-19 cannot be executed. Needs root (to set that up); touches
# nothing outside the scratch directory and its own mount namespace.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=$(mktemp -d /tmp/pure-tier.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
sysroot=$(rustc --print sysroot)
registry=${CARGO_HOME:-$HOME/.cargo}/registry

echo "==> pure tier: cargo test as nobody, without clang (scratch $scratch)"
git clone -q . "$scratch/repo"
mkdir -p "$scratch/cargo" "$scratch/toolchain"
cp -r "$registry" "$scratch/cargo/"
chown -R nobody:nogroup "$scratch"
chmod 755 "$scratch"

clang=$(command -v clang-19 || true)
unshare -m sh -e -c '
  mount --bind -o ro "$1" "$2/toolchain"
  if [ -n "$3" ]; then mount --bind /dev/null "$3"; fi
  exec setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --bounding-set=-all \
    env -i HOME="$2" PATH="$2/toolchain/bin:/usr/bin:/bin" CARGO_HOME="$2/cargo" \
    sh -e -c "cd \"$2/repo\"; ! clang-19 --version >/dev/null 2>&1; cargo test --workspace --offline -q 2>&1"
' sh "$sysroot" "$scratch" "$clang" | grep -E "^test result|warning: datapath|^error|FAILED|panicked" | sort | uniq -c
echo "==> pure tier passed"
