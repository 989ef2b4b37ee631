#!/usr/bin/env bash
# Where tokengate's CPU per request goes, step by step, in real Envoy.
#
# Builds variants of tokengate.wasm that differ only by
# `--cfg tokengate_profile="…"` (src/filter/http.rs), then measures them all
# in ONE run of benches/envoy_bench.py, interleaved in rounds beside the
# baseline and the do-nothing wasm filter (same pinning, workloads and
# validity checks as scripts/bench), as configurations CONFIG@VARIANT:
#   full              the filter as shipped: one header-map read, the clock,
#                     the decision, one host call per edit (remove the token,
#                     replace each claim header), one counter, ONE
#                     filter-state key (wasm.tokengate)
#   batched_edits     the same, but ONE call replacing the whole header map
#                     (set_header_map_pairs) instead of one per edit
#   no_edits          without the request edits
#   no_state          without the filter-state write
#   decide_only       reads the headers and decides: no counter, state or edits
#   read_only         only reads the request headers (one host call) and continues
# Checks: full, batched_edits and no_state pass every check (the upstream
# must see the token removed and x-auth-subject set); no_edits and
# decide_only only the answers (they edit nothing); read_only none (it
# decides nothing).
#
# Then prints each step's cost, from differences paired per round:
#   headers read + VM       read_only − noop-wasm
#   decision                decide_only − read_only  (clock, token, rules)
#   counter                 no_edits + no_state − full − decide_only
#   filter state            full − no_state
#   edits, one call each    full − no_edits
#   batched − per-header    batched_edits − full
#
#   benches/breakdown.sh [--quick] [ROUNDS] [SECONDS]
#       default 3 rounds of 6 s after 2 s of warm-up, configurations
#       tokengate-lean and tokengate-empty: 14 configurations, about 14 minutes
#   CONFIGS="tokengate-lean" VARIANTS="full batched_edits" benches/breakdown.sh
#
# Report: .run/breakdown.md (envoy_bench's report, then the steps), figures:
# .run/breakdown.json; the modules stay in .run/breakdown/VARIANT.wasm.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QUICK=()
if [ "${1:-}" = --quick ]; then QUICK=(--quick); shift; fi
ROUNDS=${1:-}
SECONDS_PER=${2:-}
VARIANTS=${VARIANTS:-full batched_edits no_edits no_state decide_only read_only}
CONFIGS=${CONFIGS:-tokengate-lean tokengate-empty}
OUT="$ROOT/.run/breakdown"
mkdir -p "$OUT"

cargo build --quiet --release --target wasm32-wasip1 --manifest-path benches/noop-filter/Cargo.toml
spec=""
for variant in $VARIANTS; do
  flags=""
  [ "$variant" = full ] || flags="--cfg tokengate_profile=\"$variant\""
  echo "breakdown: building $variant" >&2
  RUSTFLAGS="$flags" CARGO_TARGET_DIR="$ROOT/target/breakdown-$variant" \
    cargo build --quiet --release --target wasm32-wasip1
  cp "$ROOT/target/breakdown-$variant/wasm32-wasip1/release/tokengate.wasm" "$OUT/$variant.wasm"
  spec+="${spec:+,}$variant=$OUT/$variant.wasm"
done

configs=baseline,noop-wasm
for config in $CONFIGS; do
  for variant in $VARIANTS; do configs+=",$config@$variant"; done
done
ARGS=(--configs "$configs" --checks no_edits=status,decide_only=status,read_only=none --json "$ROOT/.run/breakdown.json")
if [ ${#QUICK[@]} -eq 0 ]; then ROUNDS=${ROUNDS:-3}; SECONDS_PER=${SECONDS_PER:-6}; fi
if [ -n "$ROUNDS" ]; then ARGS+=(--rounds "$ROUNDS"); fi
if [ -n "$SECONDS_PER" ]; then ARGS+=(--duration "$SECONDS_PER"); fi

status=0
TOKENGATE_WASM_VARIANTS="$spec" .venv/bin/python benches/envoy_bench.py "${QUICK[@]}" "${ARGS[@]}" > "$ROOT/.run/breakdown.md" || status=$?

# The steps, from the per-round added CPU in the JSON.
.venv/bin/python - "$ROOT/.run/breakdown.json" "$CONFIGS" >> "$ROOT/.run/breakdown.md" <<'EOF'
import json, statistics, sys

data = json.load(open(sys.argv[1]))
configs = sys.argv[2].split()
STEPS = [
    ("headers read + VM (read_only − noop-wasm)", {"read_only": 1, "@noop-wasm": -1}),
    ("decision: clock, token, rules (decide_only − read_only)", {"decide_only": 1, "read_only": -1}),
    ("counter (no_edits + no_state − full − decide_only)", {"no_edits": 1, "no_state": 1, "full": -1, "decide_only": -1}),
    ("filter state, one key (full − no_state)", {"full": 1, "no_state": -1}),
    ("edits, one call each (full − no_edits)", {"full": 1, "no_edits": -1}),
    ("one batched call instead (batched_edits − full)", {"batched_edits": 1, "full": -1}),
    ("everything above noop-wasm (full − noop-wasm)", {"full": 1, "@noop-wasm": -1}),
]
out = ["", "## steps (µs/request, differences of added CPU paired per round: median (min–max))", ""]
for config in configs:
    out += [f"### {config}", "", "| step | " + " | ".join(data["meta"]["workloads"]) + " |", "|---" * (1 + len(data["meta"]["workloads"])) + "|"]
    for label, terms in STEPS:
        cells = []
        for wl in data["meta"]["workloads"]:
            table = data["summary"]["workloads"][wl]["configs"]
            names = {t: (t[1:] if t.startswith("@") else f"{config}@{t}") for t in terms}
            if not all(n in table for n in names.values()):
                cells.append("—")
                continue
            rows = [table[n]["added_per_round"] for n in names.values()]
            xs = [sum(w * r[i] for w, r in zip(terms.values(), rows)) for i in range(len(rows[0])) if all(r[i] is not None for r in rows)]
            cells.append("—" if not xs else f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})" if len(xs) > 1 else f"{xs[0]:.2f}")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")
print("\n".join(out))
EOF
cat "$ROOT/.run/breakdown.md"
exit $status
