#!/usr/bin/env bash
# What one proxy-wasm host call of each kind costs in Envoy, measured.
#
# benches/hostcall-probe makes N host calls of one kind per request (its
# src/lib.rs lists the kinds and what each calls). benches/envoy_bench.py
# measures, interleaved in rounds and with the same pinning and validity
# checks as scripts/bench (warm workload only: the probe reads no token):
#   baseline, noop-wasm, the probe making no call (probe:none:0),
#   the probe making N calls of each kind (probe:KIND:N),
#   and the probe answering with a local reply (probe:reply:1).
# Per kind: (added CPU at N − added CPU of the probe making none) ÷ N, paired
# per round: µs per call. The probe making none minus noop-wasm should be
# about 0 (the same module but for the configuration it reads).
#
#   benches/hostcalls.sh [--quick] [N] [ROUNDS] [SECONDS]
#       default N 20, 3 rounds of 10 s after 2 s of warm-up (about 9 minutes);
#       --quick: 1 round of 3 s (a smoke check, about 1 minute)
#   KINDS="clock headers" benches/hostcalls.sh      only these kinds
#
# Report: .run/hostcalls.md, figures: .run/hostcalls.json.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QUICK=()
if [ "${1:-}" = --quick ]; then QUICK=(--quick); shift; fi
N=${1:-20}
ROUNDS=${2:-}
SECONDS_PER=${3:-}
KINDS=${KINDS:-clock headers header set_headers replace_header remove_header set_property metric get_property reply}

cargo build --quiet --release --target wasm32-wasip1 --manifest-path benches/noop-filter/Cargo.toml
cargo build --quiet --release --target wasm32-wasip1 --manifest-path benches/hostcall-probe/Cargo.toml

configs=baseline,noop-wasm,probe:none:0
for kind in $KINDS; do
  if [ "$kind" = reply ]; then configs+=",probe:reply:1"; else configs+=",probe:$kind:$N"; fi
done
ARGS=(--configs "$configs" --workloads warm --json "$ROOT/.run/hostcalls.json")
if [ -n "$ROUNDS" ]; then ARGS+=(--rounds "$ROUNDS"); fi
if [ -n "$SECONDS_PER" ]; then ARGS+=(--duration "$SECONDS_PER"); fi
mkdir -p .run
exec .venv/bin/python benches/envoy_bench.py "${QUICK[@]}" "${ARGS[@]}"
