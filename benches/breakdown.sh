#!/usr/bin/env bash
# Where tokengate's CPU per request goes, step by step, in real Envoy.
#
# Builds four variants of tokengate.wasm and measures each beside the
# baseline and the do-nothing wasm filter with benches/envoy_bench.py
# (same pinning, workloads and validity checks as scripts/bench):
#   full         the filter as shipped
#   no_edits     without the request edits (token removal, claim headers)
#   no_state     without the filter-state write for access logs (one key)
#   decide_only  reads the headers and decides: no counter, state or edits
#   read_only    only reads the request headers (one host call) and continues
# The variants differ only by `--cfg tokengate_profile="…"` (src/filter/http.rs).
#
#   benches/breakdown.sh [ROUNDS] [SECONDS]     (default 3 rounds of 6 s)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROUNDS=${1:-3}
SECONDS_PER=${2:-6}
OUT="$ROOT/.run/breakdown"
mkdir -p "$OUT"
for variant in ${VARIANTS:-full no_edits no_state decide_only read_only}; do
  flags=""
  [ "$variant" = full ] || flags="--cfg tokengate_profile=\"$variant\""
  RUSTFLAGS="$flags" CARGO_TARGET_DIR="$ROOT/target/breakdown-$variant" \
    cargo build --quiet --release --target wasm32-wasip1
  cp "$ROOT/target/breakdown-$variant/wasm32-wasip1/release/tokengate.wasm" "$OUT/$variant.wasm"
done
for variant in ${VARIANTS:-full no_edits no_state decide_only read_only}; do
  echo "== $variant"
  no_checks=0
  [ "$variant" = read_only ] && no_checks=1
  TOKENGATE_BENCH_NO_CHECKS=$no_checks TOKENGATE_WASM="$OUT/$variant.wasm" .venv/bin/python benches/envoy_bench.py \
    --configs baseline,noop-wasm,tokengate-empty --rounds "$ROUNDS" --duration "$SECONDS_PER" --warmup 2 \
    --json "$OUT/$variant.json" > "$OUT/$variant.md" || true
  grep -E '^\| (configuration|baseline|noop-wasm|tokengate-empty) ' "$OUT/$variant.md" || cat "$OUT/$variant.md"
done
