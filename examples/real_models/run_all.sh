#!/usr/bin/env bash
# The selective comparison of README §4: weak MiniLM-L6 -> strong MPNet-base, probe mode,
# `--method all`, 3 seeds, on sciq, social_iqa and boolq; then cross-task P(IK).
#   examples/real_models/run_all.sh OUT_DIR           (e.g. /tmp/real8; about 40 min on 2 cores)
# Env: SW2S_REAL_DIR (prepare.py's root), STRONG (default mpnet-base), SEEDS (default 0,1,2),
#      EXTRA (more `sw2s train` flags).
set -euo pipefail
OUT=${1:?usage: run_all.sh OUT_DIR}
ROOT=${SW2S_REAL_DIR:-$HOME/.cache/sw2s-real}
STRONG=${STRONG:-mpnet-base}
SEEDS=${SEEDS:-0,1,2}
gguf=$(python -c "import json; m=json.load(open('$ROOT/manifest.json'))['models']['$STRONG']; print(m['gguf_file'] or '')")
gflag=(); [ -n "$gguf" ] && gflag=(--strong-gguf "$gguf")
declare -A SIZES=(
  [sciq]="--n-weak 250 --n-w2s 450 --n-test 300 --pool-seed 0"        # all 1,000 questions
  [social_iqa]="--n-weak 400 --n-w2s 900 --n-test 600 --pool-seed 0"  # 1,900 of 1,935
  [boolq]="--n-weak 300 --n-w2s 500 --n-test 400 --pool-seed 0"       # 1,200 of 3,270 (long texts)
)
mkdir -p "$OUT"
runs=()
for task in sciq social_iqa boolq; do
  start=$(date +%s)
  # shellcheck disable=SC2086
  sw2s train --task "$task" --data "$ROOT/data/$task" --weak "$ROOT/models/minilm-l6" \
    --strong "$ROOT/models/$STRONG" "${gflag[@]}" --mode probe --method all --seeds "$SEEDS" \
    --max-length 128 ${SIZES[$task]} --out "$OUT/$task" ${EXTRA:-} 2>&1 | tee "$OUT/$task.log" | grep -v "Loading"
  echo "$task wall_s $(( $(date +%s) - start ))" | tee -a "$OUT/walls.txt"
  runs+=("$OUT/$task")
done
sw2s pik-transfer "${runs[@]}" --out "$OUT/pik_transfer.json" --force
