#!/usr/bin/env bash
# Runs cargo fuzz targets one after another, each for SECONDS (default 600),
# on one core, and prints each run's last status line (executions, coverage).
# Usage: fuzz/run.sh [seconds] [target...]   (all five targets by default)
# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain
# take them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(params basic redirect service jws)
export RUSTC_BOOTSTRAP=1
cargo fuzz build
mkdir -p logs
for target in "${targets[@]}"; do
  # The seeds stay in corpus/; what the run finds grows in a scratch copy.
  work=$(mktemp -d)
  cp corpus/"$target"/* "$work"/
  cargo fuzz run "$target" "$work" -- -max_total_time="$seconds" -print_final_stats=1 \
    > logs/"$target".log 2>&1 || { echo "$target: CRASH, see fuzz/logs/$target.log and fuzz/artifacts/$target"; exit 1; }
  echo "$target: $(grep -E '^stat::number_of_executed_units' logs/"$target".log | awk '{print $2}') executions in ${seconds}s, $(grep -E '^#[0-9]+.*DONE' logs/"$target".log | tail -1)"
  rm -rf "$work"
done
