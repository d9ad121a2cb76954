#!/usr/bin/env bash
# Proof on a GPU: distil DFDC dev crops, then train the same recipe on distilled / random / full
# subsets (4 budgets × 3 seeds × 2 arms + 3 full = 27 models) and write the report. One call on
# an H100/H200 (torch CUDA, 16 cores): ≤ ~6 min of wall time including unpacking.
#
#   OUT=/path bash scripts/gpu_eval_check.sh                  # on the GPU machine
#   SMOKE=1 OUT=/tmp/gpu_eval_smoke bash scripts/gpu_eval_check.sh   # tiny CPU dry run here
#
# Measured (H200, 2026-11-26, TIME_BUDGET=210): unpack+decode 16 s, distill 43 s, calibration
# 3 s, then 27 models × 513 steps (ResNet-18, 128 px, batch 128, light aug, bf16) in 101 s with
# 3 processes sharing the GPU (≈137 steps/s together; 70 steps/s for one process alone). With the
# default TIME_BUDGET=330 the calibration picks ≈1,300 steps per model; the whole call ≈ 5.6 min.
#
# Needs .gpu/dfdc_pack.npz (python scripts/pack_dfdc.py; ~35 MiB, git-ignored: carry `.gpu`).
# Writes $OUT/distill_dfdc_cuda.log and $OUT/distill_dfdc_cuda.tar.gz (results folder: results
# JSON/Markdown, report.md/html, figures/, plus the eval cells and distillation logs, without the
# embeddings) — unpack it into benchmarks/results/ on the dev machine.
. "$(dirname "$0")/gpu_env.sh"
WORK=${WORK:-/tmp/distill_dfdc_work}
RES=$WORK/results/distill_dfdc_cuda
TIME_BUDGET=${TIME_BUDGET:-330}   # the benchmark's own budget (calibrates steps per model)
LIMIT=${LIMIT:-355}               # hard stop (the whole call: ≤ 6 min)
if [ "${SMOKE:-0}" = 1 ]; then
  ARGS="--device cpu --max-pool 400 --max-test 200 --image-size 32 --batch-size 32 --steps 10 --seeds 1 --distill-steps 10 --budgets 0.1,0.2 --threads 1 --max-epochs 2 --min-steps 5"
else
  ARGS="--device cuda --image-size 128 --batch-size 128 --augment light --max-epochs 20 --seeds 3 --distill-steps 500 --seed-size 0.04 --budgets 0.05,0.1,0.2,0.3 --strategy ${STRATEGY:-balanced+random} --workers ${WORKERS:-3} --parallel-speedup ${SPEEDUP:-2.2}"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null | tee "$OUT/distill_dfdc_cuda.log"
set -o pipefail
timeout "$LIMIT" $PY benchmarks/distill_dfdc.py $ARGS --pack .gpu/dfdc_pack.npz --work "$WORK" \
  --results "$RES" --time-budget "$TIME_BUDGET" --fresh 2>&1 | tee -a "$OUT/distill_dfdc_cuda.log"
rc=$?
echo "benchmark rc=$rc" | tee -a "$OUT/distill_dfdc_cuda.log"
# one archive: results + the small run files (cells, summaries, rounds, pool scores), no embeddings
mkdir -p "$RES/run"
cp -r "$WORK/eval" "$RES/run/" 2>/dev/null
mkdir -p "$RES/run/distill"
for f in config.json rounds.parquet pool_scores.parquet distilled.parquet milestones; do
  cp -r "$WORK/distill/$f" "$RES/run/distill/" 2>/dev/null
done
cp "$WORK/run.json" "$RES/run/" 2>/dev/null
tar -czf "$OUT/distill_dfdc_cuda.tar.gz" -C "$WORK/results" distill_dfdc_cuda
ls -la "$OUT"
exit $rc
