#!/usr/bin/env bash
# The pre-registered pilot and final runs (examples/real_models/preregistration.md):
#   examples/real_models/run_regimes.sh pilot OUT_DIR [REGIME ...]   # shard 0/2, 10 re-splits
#   examples/real_models/run_regimes.sh final OUT_DIR REGIME ...     # shard 1/2, 30 re-splits
# then: python examples/real_models/evidence.py OUT_DIR/<regime> ...
# Env: SW2S_REAL_DIR (prepare.py's root), RESPLITS (override), EXTRA (more `sw2s train` flags).
set -euo pipefail
PHASE=${1:?pilot or final}; OUT=${2:?OUT_DIR}; shift 2
ROOT=${SW2S_REAL_DIR:-$HOME/.cache/sw2s-real}
case $PHASE in
  pilot) SHARD=0/2; RESPLITS=${RESPLITS:-10} ;;
  final) SHARD=1/2; RESPLITS=${RESPLITS:-30} ;;
  *) echo "phase must be pilot or final" >&2; exit 2 ;;
esac
REGIMES=${*:-"sciq boolq hellaswag social_iqa sciq+boolq"}
declare -A SIZES=(
  [sciq]="--n-weak 120 --n-w2s 215 --n-test 145"
  [boolq]="--n-weak 300 --n-w2s 500 --n-test 400"
  [hellaswag]="--n-weak 250 --n-w2s 450 --n-test 300"
  [social_iqa]="--n-weak 230 --n-w2s 410 --n-test 280"
  [sciq+boolq]="--n-weak 240 --n-w2s 430 --n-test 290 --per-source 1000"
)
mkdir -p "$OUT"
for regime in $REGIMES; do
  data=$(echo "$regime" | tr '+' '\n' | sed "s|^|$ROOT/data/|" | paste -sd,)
  start=$(date +%s)
  # shellcheck disable=SC2086
  sw2s train --task "$regime" --data "$data" --weak "$ROOT/models/minilm-l6" --strong "$ROOT/models/mpnet-base" \
    --mode probe --method all --resplits "$RESPLITS" --pool-seed 0 --question-shard "$SHARD" --max-length 128 \
    --precision bf16 ${SIZES[$regime]} --out "$OUT/$regime" --device cpu ${EXTRA:-} > "$OUT/$regime.log" 2>&1
  echo "$regime $PHASE wall_s $(( $(date +%s) - start ))" | tee -a "$OUT/walls.txt"
done
