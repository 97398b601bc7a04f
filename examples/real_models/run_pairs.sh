#!/usr/bin/env bash
# Weak MiniLM-L6 vs each strong candidate on one task, probe mode, through the package's CLI.
#   examples/real_models/run_pairs.sh TASK "N_WEAK N_W2S N_TEST" [STRONG ...]
# e.g. examples/real_models/run_pairs.sh sciq "150 200 100" mpnet-base smollm2-135m gemma3-270m
# Env: SW2S_REAL_DIR (prepare.py's root), OUT (default /tmp/real), SEEDS (default 0),
#      SW2S (the CLI command, default `sw2s`), EXTRA (more sw2s train flags, e.g. "--method all").
# All pairs of a task share one stage cache (OUT/cache-TASK), so the weak model's features and
# training are computed once per task and seed.
set -euo pipefail
ROOT=${SW2S_REAL_DIR:-$HOME/.cache/sw2s-real}
OUT=${OUT:-/tmp/real}
SEEDS=${SEEDS:-0}
SW2S=${SW2S:-sw2s}
task=$1; read -r nw n2 nt <<<"$2"; shift 2
strongs=("$@"); [ ${#strongs[@]} -gt 0 ] || strongs=(mpnet-base smollm2-135m gemma3-270m)
gguf_of() { python -c "import json,sys; m=json.load(open('$ROOT/manifest.json'))['models']['$1']; print(m['gguf_file'] or '')"; }
mkdir -p "$OUT/cache-$task"
for s in "${strongs[@]}"; do
  run="$OUT/$task-minilm-l6-$s"
  mkdir -p "$run"; [ -e "$run/cache" ] || ln -s "$OUT/cache-$task" "$run/cache"
  g=$(gguf_of "$s"); gflag=(); [ -n "$g" ] && gflag=(--strong-gguf "$g")
  start=$(date +%s)
  $SW2S train --task "$task" --data "$ROOT/data/$task" --weak "$ROOT/models/minilm-l6" \
    --strong "$ROOT/models/$s" "${gflag[@]}" --mode probe --seeds "$SEEDS" \
    --n-weak "$nw" --n-w2s "$n2" --n-test "$nt" --out "$run" ${EXTRA:-} 2>&1 | tee "$run/log.txt"
  echo "wall_s $(( $(date +%s) - start ))" | tee -a "$run/log.txt"
done
