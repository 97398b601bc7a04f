#!/usr/bin/env bash
# The paired evidence of README "Results on real models": weak MiniLM-L6 -> strong MPNet-base,
# probe mode with anchored heads (the default), every student, RESPLITS re-splits of one question
# pool per task (one encode pass each), then the contrast table and plot.
#   examples/real_models/run_evidence.sh OUT_DIR        (after prepare.py; ~15-25 min per task on 2 cores)
# Env: SW2S_REAL_DIR (prepare.py's root), RESPLITS (default 30), TASKS (default: the five below),
#      STRONG (default mpnet-base), EXTRA (more `sw2s train` flags, e.g. "--head plain").
set -euo pipefail
OUT=${1:?usage: run_evidence.sh OUT_DIR}
ROOT=${SW2S_REAL_DIR:-$HOME/.cache/sw2s-real}
STRONG=${STRONG:-mpnet-base}
RESPLITS=${RESPLITS:-30}
TASKS=${TASKS:-"sciq openbookqa social_iqa boolq hellaswag"}
gguf=$(python -c "import json; m=json.load(open('$ROOT/manifest.json'))['models']['$STRONG']; print(m['gguf_file'] or '')")
gflag=(); [ -n "$gguf" ] && gflag=(--strong-gguf "$gguf")
declare -A SIZES=(                                                      # questions: weak / w2s / test
  [sciq]="--n-weak 250 --n-w2s 450 --n-test 300"                        # all 1,000
  [openbookqa]="--n-weak 125 --n-w2s 225 --n-test 150"                  # all 500
  [social_iqa]="--n-weak 400 --n-w2s 900 --n-test 600"                  # 1,900 of 1,935
  [boolq]="--n-weak 300 --n-w2s 500 --n-test 400"                       # 1,200 of 3,270 (long passages)
  [hellaswag]="--n-weak 250 --n-w2s 450 --n-test 300"                   # 1,000 of 10,042 (long endings)
)
mkdir -p "$OUT"
for task in $TASKS; do
  start=$(date +%s)
  # shellcheck disable=SC2086
  sw2s train --task "$task" --data "$ROOT/data/$task" --weak "$ROOT/models/minilm-l6" \
    --strong "$ROOT/models/$STRONG" "${gflag[@]}" --mode probe --method all --resplits "$RESPLITS" --pool-seed 0 \
    --max-length 128 ${SIZES[$task]} --out "$OUT/$task" --device cpu ${EXTRA:-} > "$OUT/$task.log" 2>&1
  echo "$task wall_s $(( $(date +%s) - start ))" | tee -a "$OUT/walls.txt"
done
python "$(dirname "$0")/collect_evidence.py" "$OUT" --tasks $TASKS
