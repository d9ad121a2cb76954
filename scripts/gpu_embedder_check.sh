#!/usr/bin/env bash
# Issue 24 on a GPU, one call (≤ 9 min; UNVERIFIED: not yet run on a lent GPU):
#   pretrain a SimCLR embedder on the packed DFDC dev train pool (PRETRAIN_MIN minutes),
#   frozen linear-probe val AUC vs random init + embeddings of all rows (benchmarks/pretrain_dfdc.py),
#   distil balanced typicality in its space at 5 % once per paired seed, then evaluate it against the baselines with
#   every arm initialised from the embedder (--init), converged protocol, every arm early-stopping
#   on the same val rows (--val-source split).
#
#   OUT=/path bash scripts/gpu_embedder_check.sh                      # on the GPU machine
#   SMOKE=1 PY=.venv/bin/python OUT=/tmp/gpu_emb_smoke bash scripts/gpu_embedder_check.sh  # tiny CPU dry run
#
# Needs .gpu/dfdc_pack.npz (python scripts/pack_dfdc.py; git-ignored: carry `.gpu`).
. "$(dirname "$0")/gpu_env.sh"
WORK=${WORK:-/tmp/embedder_work}
summary="$OUT/embedder_summary.txt"
: > "$summary"
step() {  # step NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/embedder_$name.log" 2>&1
  local rc=$?
  printf 'embedder_%-10s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$summary"
  tail -n 6 "$OUT/embedder_$name.log"
}
if [ "${SMOKE:-0}" = 1 ]; then
  PRE="--quick --device cpu"
  DEV=cpu; BB=resnet10t; SIZE=32; EVAL="--seeds 1 --max-epochs 2 --min-steps 5 --steps 20 --train-batch-size 32 --threads 1 --val-source split"
  LIMITS=(200 120 240); NSEEDS=1
else
  PRE="--device cuda --pack .gpu/dfdc_pack.npz --backbone resnet18 --image-size 128 --batch-size 256 --budget-min ${PRETRAIN_MIN:-3}"
  DEV=cuda; BB=resnet18; SIZE=128; EVAL="--seeds 2 --max-epochs 20 --min-steps 200 --train-batch-size 128 --augment light --val-source split --val-max 1000"
  LIMITS=(300 60 170); NSEEDS=2
fi
step pretrain "${LIMITS[0]}" $PY benchmarks/pretrain_dfdc.py $PRE --work "$WORK" --results "$OUT"
EMB=$WORK/embedder/embedder.pt
distil_seeds() {  # one distillation per paired seed: the method's own selection variance counts
  for ((s = 0; s < NSEEDS; s++)); do
    $PY -m edgedistal.cli distill --manifest "$WORK/manifest.parquet" --embedder "$EMB" --strategy balanced+typiclust \
      --budget 0.05 --milestones 0.05 --seed-size 0.01 --seed "$s" --device "$DEV" -o "$WORK/d_typ_$s" --overwrite || return
  done
}
export PY WORK EMB DEV NSEEDS
step distill "${LIMITS[1]}" bash -c "$(declare -f distil_seeds); distil_seeds"  # timeout runs no function
step evaluate "${LIMITS[2]}" $PY -m edgedistal.cli evaluate -m "$WORK/manifest.parquet" --distilled "emb_typiclust=$WORK/d_typ_{seed}" \
  --budgets 0.05 --protocol converged --init "$EMB" --backbone "$BB" --image-size "$SIZE" --device "$DEV" \
  $EVAL -o "$OUT/embedder_eval"
echo "--- summary"; cat "$summary"
