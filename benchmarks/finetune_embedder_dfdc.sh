#!/usr/bin/env bash
# Issues 22 + 24 on DFDC dev, CPU: selection in the embedder's space against uniform, stratified
# and balanced random under the FINE-TUNE protocol (a detector trained per arm until its val curve
# plateaus; paired seeds: method and baselines share the training seed, val carve and init).
# The screening protocol (a logistic head on frozen features) is benchmarks/screen_embedder_dfdc.sh.
#
#   bash benchmarks/finetune_embedder_dfdc.sh W NAME [eval_curve_dfdc.py options ...]
#   e.g. from scratch, then every arm initialised from the embedder:
#   bash benchmarks/finetune_embedder_dfdc.sh runs/pretrain_dfdc finetune_embedder_dfdc
#   bash benchmarks/finetune_embedder_dfdc.sh runs/pretrain_dfdc finetune_embedder_dfdc_init \
#        --init runs/pretrain_dfdc/embedder/embedder.pt
#
# W: the working folder of benchmarks/pretrain_dfdc.py (manifest.parquet, scores/ with every row's
# embedding, embedder/embedder.pt). The methods are distilled once (the milestones of one run, so
# 1 % is a prefix of 2 % and 5 %); the cells are fingerprinted and resume (re-run the command).
# The full arm is left out (--full-seeds 0): it converged in its own run (train_dfdc_long).
# Environment: BUDGETS (default 0.01,0.02,0.05), SEEDS (default 5), PY; MILESTONES (default = BUDGETS:
# the distillation's budget is the largest) and SEL (default runs/embedder_selection_<largest budget>).
# The distilled subsets depend on the milestones, so another list distils into another SEL.
set -euo pipefail
W=${1:-runs/pretrain_dfdc}
NAME=${2:-finetune_embedder_dfdc}
shift 2 || true
PY=${PY:-.venv/bin/python}
BUDGETS=${BUDGETS:-0.01,0.02,0.05}
MILESTONES=${MILESTONES:-$BUDGETS}
TOP=${MILESTONES##*,}
SEL=${SEL:-runs/embedder_selection_$TOP}
mkdir -p "$SEL"
ARMS=()
for st in balanced+kcenter balanced+typiclust; do
  name=${st//+/_}
  d="$SEL/$name"
  if [ ! -f "$d/distilled.parquet" ]; then
    rm -rf "$d"
    "$PY" -m edgedistal.cli distill --manifest "$W/manifest.parquet" --scores "$W/scores" --strategy "$st" \
      --budget "$TOP" --milestones "$MILESTONES" --seed-size 0.005 --device cpu -o "$d" > "$SEL/$name.log" 2>&1
  fi
  ARMS+=(--distilled "emb.$st=$d")  # emb.: selected in the embedder's space
done
"$PY" benchmarks/eval_curve_dfdc.py --device cpu --threads 1 --workers 2 --budgets "$BUDGETS" \
  --seeds "${SEEDS:-5}" --baselines random,balanced,stratified --full-seeds 0 --max-epochs 12 --patience 4 \
  "${ARMS[@]}" --name "$NAME" "$@"
