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
# STRATEGIES (default "balanced+kcenter balanced+typiclust"; e.g. add balanced+probcover and the
# peer mundig). DISTILL_SEEDS=N distils each method N times (distill --seed 0..N-1, into SEL/<name>_<seed>)
# and pairs seed s with distillation s, so a method's own selection variance enters its interval;
# unset, each method is one subset (seed 0) shared by every training seed. JOBS=N (default 1) runs N
# distillations side by side, one thread each (2 on these 2 cores halves the wait before training).
set -euo pipefail
W=${1:-runs/pretrain_dfdc}
NAME=${2:-finetune_embedder_dfdc}
shift 2 || true
PY=${PY:-.venv/bin/python}
BUDGETS=${BUDGETS:-0.01,0.02,0.05}
MILESTONES=${MILESTONES:-$BUDGETS}
TOP=${MILESTONES##*,}
SEL=${SEL:-runs/embedder_selection_$TOP}
JOBS=${JOBS:-1}
mkdir -p "$SEL"
distil() {  # strategy, seed, folder: once (a finished folder is kept)
  if [ ! -f "$3/distilled.parquet" ]; then
    rm -rf "$3"
    if [ "$JOBS" -gt 1 ]; then export OMP_NUM_THREADS=1; fi
    "$PY" -m edgedistal.cli distill --manifest "$W/manifest.parquet" --scores "$W/scores" --strategy "$1" \
      --budget "$TOP" --milestones "$MILESTONES" --seed-size 0.005 --seed "$2" --device cpu -o "$3" > "$3.log" 2>&1
  fi
}
ARMS=()
DIRS=()
for st in ${STRATEGIES:-balanced+kcenter balanced+typiclust}; do
  name=${st//+/_}
  if [ -n "${DISTILL_SEEDS:-}" ]; then
    for ((s = 0; s < DISTILL_SEEDS; s++)); do
      distil "$st" "$s" "$SEL/${name}_$s" &
      DIRS+=("$SEL/${name}_$s")
      if [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; then wait -n || true; fi  # checked below
    done
    ARMS+=(--distilled "emb.$st=$SEL/${name}_{seed}")  # emb.: selected in the embedder's space
  else
    distil "$st" 0 "$SEL/$name" &
    DIRS+=("$SEL/$name")
    if [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; then wait -n || true; fi
    ARMS+=(--distilled "emb.$st=$SEL/$name")
  fi
done
wait
for d in "${DIRS[@]}"; do
  [ -f "$d/distilled.parquet" ] || { echo "distillation failed: see $d.log" >&2; exit 1; }
done
"$PY" benchmarks/eval_curve_dfdc.py --device cpu --threads 1 --workers 2 --budgets "$BUDGETS" \
  --seeds "${SEEDS:-5}" --baselines random,balanced,stratified --full-seeds 0 --max-epochs 12 --patience 4 \
  "${ARMS[@]}" --name "$NAME" "$@"
