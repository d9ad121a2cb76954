#!/usr/bin/env bash
# Issue 22 on a GPU, one call: the whole budget curve (1, 2, 5, 10, 20 %; 5 paired seeds at
# ≤ 5 %, 3 above) on the packed DFDC dev crops, fine-tune protocol (arms retrained with a larger
# cap while val AUC still rises, up to 96 passes), the baselines + RS2 + the full arm, then the
# report. Target: ≤ 9 minutes of wall time including unpacking. UNVERIFIED: written on a CPU-only
# machine; the estimate below comes from the #13 H200 run's throughput (≈ 137 steps/s with 3
# processes at batch 128), not from running this script.
#
#   OUT=/path bash scripts/gpu_eval_check.sh                 # on the GPU machine
#   SMOKE=1 OUT=/tmp/gpu_eval_smoke bash scripts/gpu_eval_check.sh   # ≈ 1-2 min CPU dry run here
#
# Estimate (one distilled method, 108 models): subsets ≈ 29k steps (min 200 per model), the full
# arm 3 × 3,000 steps at a first cap of 24 passes, ≈ 38k steps ≈ 4.6 min at 137 steps/s, plus
# evaluations, per-model overhead and any escalation; --time-budget 480 stops starting models
# after 8 min (a re-run of the same command resumes from the cells).
#
# Needs .gpu/dfdc_pack.npz (python scripts/pack_dfdc.py; git-ignored: carry `.gpu`).
# DISTILLED="--distilled NAME=DIR ..." evaluates existing distillations instead of distilling
# STRATEGY here (their sample ids must match the pack's manifest).
# Writes $OUT/eval_curve_dfdc_cuda.log and $OUT/eval_curve_dfdc_cuda.tar.gz (results folder +
# cells) — unpack it into benchmarks/results/ on the dev machine.
. "$(dirname "$0")/gpu_env.sh"
WORK=${WORK:-/tmp/eval_curve_dfdc_work}
NAME=${NAME:-eval_curve_dfdc_cuda}
TIME_BUDGET=${TIME_BUDGET:-480}   # no model starts after this (s)
LIMIT=${LIMIT:-530}               # hard stop of the whole call
if [ "${SMOKE:-0}" = 1 ]; then
  ARGS="--quick --device cpu --threads 1"
else
  ARGS="--device cuda --workers ${WORKERS:-3} --max-epochs 24 --ceiling-epochs 96 --patience 5 --augment light --strategy ${STRATEGY:-balanced+random} --distill-steps 500 --pack .gpu/dfdc_pack.npz --time-budget $TIME_BUDGET ${DISTILLED:-}"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null | tee "$OUT/$NAME.log"
set -o pipefail
timeout "$LIMIT" $PY benchmarks/eval_curve_dfdc.py $ARGS --work "$WORK" --name "$NAME" 2>&1 | tee -a "$OUT/$NAME.log"
rc=$?
echo "benchmark rc=$rc" | tee -a "$OUT/$NAME.log"
RES=benchmarks/results/$NAME
mkdir -p "$RES/run"
cp -r "$WORK/eval" "$RES/run/" 2>/dev/null
cp "$WORK/run.json" "$RES/run/" 2>/dev/null
tar -czf "$OUT/$NAME.tar.gz" -C benchmarks/results "$NAME"
ls -la "$OUT"
exit $rc
