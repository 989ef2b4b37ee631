#!/usr/bin/env bash
# Module size against speed, decided by measurement: builds tokengate.wasm
# with other optimisation settings and measures each build beside the
# shipped one in ONE run of benches/envoy_bench.py (configurations
# CONFIG@VARIANT, interleaved in rounds, same checks as scripts/bench).
#
# A variant is OPT or OPT.WASMOPT:
#   OPT       the release profile's opt-level: o3, o2, s (as shipped), z
#             (CARGO_PROFILE_RELEASE_OPT_LEVEL; sha2, hmac and base64 stay at 3
#             through their package overrides in Cargo.toml)
#   WASMOPT   then Binaryen's wasm-opt at that level: O2, O3, O4, Os, Oz
#             (/usr/bin/wasm-opt), with the features rustc emits for
#             wasm32-wasip1 enabled (WASM_OPT_FEATURES). Not --all-features:
#             wasm-opt 108 -Oz --all-features wrote a module Envoy's V8
#             refused to load ("Failed to load Wasm bytecode"); with gc,
#             typed-function-references or exception-handling enabled its
#             output differs from the one below, which Envoy loads.
#
#   benches/variants.sh [--quick] [ROUNDS] [SECONDS]
#       default: variants "o3 z s.Oz o3.O3" of tokengate-lean, 3 rounds of
#       10 s after 2 s of warm-up (7 configurations, about 9 minutes)
#   VARIANTS="o3 s.Os" CONFIGS="tokengate-lean tokengate" benches/variants.sh
#
# Prints each module's size first. Report: .run/variants.md, figures:
# .run/variants.json; the modules stay in .run/variants/VARIANT.wasm.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QUICK=()
if [ "${1:-}" = --quick ]; then QUICK=(--quick); shift; fi
ROUNDS=${1:-}
SECONDS_PER=${2:-}
VARIANTS=${VARIANTS:-o3 z s.Oz o3.O3}
CONFIGS=${CONFIGS:-tokengate-lean}
WASM_OPT_FEATURES=${WASM_OPT_FEATURES:---enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue --enable-reference-types}
OUT="$ROOT/.run/variants"
mkdir -p "$OUT"

cargo build --quiet --release --target wasm32-wasip1
cargo build --quiet --release --target wasm32-wasip1 --manifest-path benches/noop-filter/Cargo.toml

level_of() {
  case "$1" in
    o3) echo 3 ;; o2) echo 2 ;; s) echo s ;; z) echo z ;;
    *) echo "variants: unknown opt-level $1 (o3, o2, s, z)" >&2; exit 2 ;;
  esac
}

spec=""
printf '%-12s %10s\n' "module" "bytes" >&2
printf '%-12s %10s\n' "shipped" "$(stat -c %s target/wasm32-wasip1/release/tokengate.wasm)" >&2
for variant in $VARIANTS; do
  opt=${variant%%.*}
  wopt=""
  [ "$opt" = "$variant" ] || wopt=${variant#*.}
  built="$ROOT/target/variant-$opt/wasm32-wasip1/release/tokengate.wasm"
  level=$(level_of "$opt")
  echo "variants: building opt-level $opt" >&2
  CARGO_PROFILE_RELEASE_OPT_LEVEL=$level CARGO_TARGET_DIR="$ROOT/target/variant-$opt" \
    cargo build --quiet --release --target wasm32-wasip1
  if [ -n "$wopt" ]; then
    case "$wopt" in O2|O3|O4|Os|Oz) ;; *) echo "variants: unknown wasm-opt level $wopt" >&2; exit 2 ;; esac
    # shellcheck disable=SC2086 # a list of flags
    wasm-opt "-$wopt" $WASM_OPT_FEATURES "$built" -o "$OUT/$variant.wasm"
  else
    cp "$built" "$OUT/$variant.wasm"
  fi
  printf '%-12s %10s\n' "$variant" "$(stat -c %s "$OUT/$variant.wasm")" >&2
  spec+="${spec:+,}$variant=$OUT/$variant.wasm"
done

configs=baseline,noop-wasm
for config in $CONFIGS; do
  configs+=",$config"
  for variant in $VARIANTS; do configs+=",$config@$variant"; done
done
ARGS=(--configs "$configs" --json "$ROOT/.run/variants.json")
if [ -n "$ROUNDS" ]; then ARGS+=(--rounds "$ROUNDS"); fi
if [ -n "$SECONDS_PER" ]; then ARGS+=(--duration "$SECONDS_PER"); fi
TOKENGATE_WASM_VARIANTS="$spec" exec .venv/bin/python benches/envoy_bench.py "${QUICK[@]}" "${ARGS[@]}"
